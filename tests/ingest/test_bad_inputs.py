"""Inputs that cannot be ingested fail with a stable `code` and a message naming the problem."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from retention_ingest.dates import check_timezone
from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.file_ingest import inspect_file
from retention_ingest.mapping import ColumnMapping
from tests.ingest.support import ingest
from tests.support.paths import TEST_DATA
from tests.support.workbook import write_xlsx

HEADER = "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = "536365,85123A,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"


def fails(path: Path, work: Path, code: IngestErrorCode, **options: object) -> IngestError:
    with pytest.raises(IngestError) as caught:
        ingest(path, work, **options)
    assert caught.value.code == code, caught.value
    assert caught.value.message and "Traceback" not in caught.value.message
    assert caught.value.as_detail()["code"] == code.value
    return caught.value


def test_mapping_naming_a_missing_column(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(HEADER + ROW)
    mapping = ColumnMapping.parse(
        '{"customer_id": "CustomerID", "order_id": "InvoiceNo", "order_datetime": "Date",'
        ' "product_id": "StockCode", "quantity": "Quantity", "unit_price": "UnitPrice"}'
    )
    error = fails(
        tmp_path / "f.csv", tmp_path / "w", IngestErrorCode.MISSING_COLUMN, mapping=mapping
    )
    assert error.field == "order_datetime" and "'Date'" in error.message
    # Detectable at upload time, from the header alone.
    with pytest.raises(IngestError):
        inspect_file(tmp_path / "f.csv", work_dir=tmp_path / "w2", mapping=mapping)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("not json", "mapping"),
        ('["customer_id"]', "mapping"),
        ('{"customer": "C"}', "customer"),
        ('{"customer_id": "C", "order_datetime": "D"}', "mapping"),
        (
            '{"customer_id": "C", "order_datetime": "D", "order_total": "T", "date_format": "dd"}',
            "date_format",
        ),
    ],
)
def test_invalid_mappings(raw: str, field: str) -> None:
    with pytest.raises(IngestError) as caught:
        ColumnMapping.parse(raw)
    assert caught.value.code == IngestErrorCode.INVALID_MAPPING
    assert caught.value.field == field


@pytest.mark.parametrize("pattern", ["%Q %K", "%", "%Y %%", "%H:%M", "%d/%m/%Y%"])
def test_a_date_format_that_reads_no_date_is_an_invalid_mapping(pattern: str) -> None:
    """These have a `%` but read no date: saved, they failed every upload mapped with them."""
    mapping = {"customer_id": "C", "order_datetime": "D", "order_total": "T"}
    with pytest.raises(IngestError) as caught:
        ColumnMapping.parse({**mapping, "date_format": pattern})
    assert caught.value.code == IngestErrorCode.INVALID_MAPPING
    assert caught.value.field == "date_format"
    for good in ("%d.%m.%Y %H:%M", "%m/%d/%Y %I:%M %p", "%Y%m%d", "%d-%b-%Y", "%s"):
        assert ColumnMapping.parse({**mapping, "date_format": good}).date_format == good


def test_unknown_layout_without_mapping_lists_the_columns(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("a,b,c\n1,2,3\n")
    error = fails(tmp_path / "f.csv", tmp_path / "w", IngestErrorCode.UNKNOWN_LAYOUT)
    assert "'a', 'b', 'c'" in error.message


@pytest.mark.parametrize(
    "content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), b"PK\x03\x04junk"]
)
def test_unknown_formats(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(content)
    with pytest.raises(IngestError) as caught:
        ingest(tmp_path / "f.bin", tmp_path / "w")
    assert caught.value.code in (IngestErrorCode.UNKNOWN_FORMAT, IngestErrorCode.TRUNCATED_FILE)


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "f.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    fails(tmp_path / "f.zip", tmp_path / "w", IngestErrorCode.UNKNOWN_FORMAT)


@pytest.mark.parametrize("content", [b"", b"  \n\n  \n"])
def test_empty_files(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_bytes(content)
    fails(tmp_path / "f.csv", tmp_path / "w", IngestErrorCode.EMPTY_FILE)
    (tmp_path / "f.csv.gz").write_bytes(gzip.compress(content))
    fails(tmp_path / "f.csv.gz", tmp_path / "w", IngestErrorCode.EMPTY_FILE)


def test_header_only_and_zero_row_parquet(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(HEADER)
    fails(tmp_path / "f.csv", tmp_path / "w", IngestErrorCode.NO_ROWS)
    pl.read_parquet(TEST_DATA / "online_retail_slice.parquet").head(0).write_parquet(
        tmp_path / "f.parquet"
    )
    fails(tmp_path / "f.parquet", tmp_path / "w", IngestErrorCode.NO_ROWS)


def test_no_usable_rows_keeps_the_counts_and_rejects(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(HEADER + ROW.replace("17850.0", "") * 3)
    error = fails(tmp_path / "f.csv", tmp_path / "w", IngestErrorCode.NO_USABLE_ROWS)
    assert "missing_customer_id (3)" in error.message
    assert error.result.rows_read == 3 and error.result.rejected_by_reason == {
        "missing_customer_id": 3
    }
    assert error.result.write_rejects_csv(tmp_path / "rejects.csv").read_text().count("\n") == 4


def test_zero_row_excel_sheet(tmp_path: Path) -> None:
    frame = pl.read_parquet(TEST_DATA / "online_retail_slice.parquet").head(0)
    write_xlsx(frame, tmp_path / "f.xlsx", sheet_name="Orders")
    error = fails(tmp_path / "f.xlsx", tmp_path / "w", IngestErrorCode.EMPTY_SHEET)
    assert "Orders" in error.message


def test_non_utf8_bytes(tmp_path: Path) -> None:
    # In the first lines (seen while detecting the format) ...
    (tmp_path / "a.csv").write_bytes(
        (HEADER + ROW.replace("United Kingdom", "Espa\xf1a")).encode("latin-1")
    )
    error = fails(tmp_path / "a.csv", tmp_path / "w", IngestErrorCode.NOT_UTF8)
    assert "line 2" in error.message
    # ... and far into the file (seen by the streaming reader), naming the column.
    body = HEADER + ROW * 5_000 + ROW.replace("United Kingdom", "Espa\xf1a")
    (tmp_path / "b.csv").write_bytes(body.encode("latin-1"))
    error = fails(tmp_path / "b.csv", tmp_path / "w", IngestErrorCode.NOT_UTF8)
    assert error.field == "Country"


def test_truncated_files(tmp_path: Path) -> None:
    text = (HEADER + ROW * 3_000).encode()
    (tmp_path / "cut.csv").write_bytes(text[: len(text) - 30])
    error = fails(tmp_path / "cut.csv", tmp_path / "w", IngestErrorCode.TRUNCATED_FILE)
    assert "cut short" in error.message
    compressed = gzip.compress(text * 20)
    (tmp_path / "cut.csv.gz").write_bytes(compressed[: len(compressed) // 2])
    fails(tmp_path / "cut.csv.gz", tmp_path / "w", IngestErrorCode.TRUNCATED_FILE)
    parquet = (TEST_DATA / "online_retail_slice.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(parquet[: len(parquet) // 2])
    fails(tmp_path / "cut.parquet", tmp_path / "w", IngestErrorCode.TRUNCATED_FILE)


def test_a_row_with_extra_fields_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(HEADER + ROW + ROW.replace("2.55", "2,55"))
    error = fails(tmp_path / "f.csv", tmp_path / "w", IngestErrorCode.MALFORMED_CSV)
    assert "8 fields where the header has 7" in error.message


def test_wrong_delimiter(tmp_path: Path) -> None:
    (tmp_path / "colon.csv").write_text((HEADER + ROW).replace(",", ":"))
    error = fails(tmp_path / "colon.csv", tmp_path / "w", IngestErrorCode.WRONG_DELIMITER)
    assert error.field == "delimiter"
    (tmp_path / "semi.csv").write_text((HEADER + ROW).replace(",", ";"))
    error = fails(
        tmp_path / "semi.csv", tmp_path / "w", IngestErrorCode.WRONG_DELIMITER, delimiter=","
    )
    assert "looks ';'-separated" in error.message


def test_unparseable_date_column(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(HEADER + ROW.replace("2010-12-01 08:26:00", "soon") * 5)
    error = fails(tmp_path / "f.csv", tmp_path / "w", IngestErrorCode.UNPARSEABLE_DATE_COLUMN)
    assert error.field == "order_datetime" and "InvoiceDate" in error.message
    # A mapping's date_format that reads none of the values fails the same way.
    (tmp_path / "g.csv").write_text(HEADER + ROW)
    mapping = ColumnMapping(
        customer_id="CustomerID",
        order_id="InvoiceNo",
        order_datetime="InvoiceDate",
        product_id="StockCode",
        quantity="Quantity",
        unit_price="UnitPrice",
        date_format="%d.%m.%Y",
    )
    fails(
        tmp_path / "g.csv", tmp_path / "w", IngestErrorCode.UNPARSEABLE_DATE_COLUMN, mapping=mapping
    )


def test_unknown_timezone(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(HEADER + ROW)
    error = fails(
        tmp_path / "f.csv",
        tmp_path / "w",
        IngestErrorCode.UNKNOWN_TIMEZONE,
        timezone="Mars/Olympus",
    )
    assert error.field == "timezone"


@pytest.mark.parametrize("zone", ["posixrules", "Factory", "localtime", "right/UTC", "zone.tab"])
def test_a_zone_file_polars_cannot_read_in_is_an_unknown_timezone(zone: str) -> None:
    """zoneinfo opens these; polars does not, and every upload read in one failed later."""
    with pytest.raises(IngestError) as raised:
        check_timezone(zone)
    assert raised.value.code == IngestErrorCode.UNKNOWN_TIMEZONE
    assert raised.value.field == "timezone"
    assert check_timezone("America/Argentina/Buenos_Aires") == "America/Argentina/Buenos_Aires"


def test_bad_values_are_rows_rejected_not_file_errors(tmp_path: Path) -> None:
    rows = [
        ROW,
        ROW.replace("08:26:00", "8h26"),  # unparseable_order_datetime
        ROW.replace(",6,", ",six,"),  # unparseable_quantity
        ROW.replace(",6,", ",0,"),  # zero_quantity
        ROW.replace("2.55", "free"),  # unparseable_unit_price
        ROW.replace("2.55", ""),  # missing_unit_price
        ROW.replace("85123A", " "),  # missing_product_id
        ROW.replace("536365", ""),  # missing_order_id
        ROW.replace("2010-12-01 08:26:00", ""),  # missing_order_datetime
        ROW.replace("2.55", "-1").replace("17850.0", ""),  # missing_customer_id wins
        ROW,  # duplicate_line
    ]
    (tmp_path / "f.csv").write_text(HEADER + "".join(rows))
    result = ingest(tmp_path / "f.csv", tmp_path / "w")
    reasons = dict(result.rejects().select("row", "reason").collect().iter_rows())
    assert reasons == {
        2: "unparseable_order_datetime",
        3: "unparseable_quantity",
        4: "zero_quantity",
        5: "unparseable_unit_price",
        6: "missing_unit_price",
        7: "missing_product_id",
        8: "missing_order_id",
        9: "missing_order_datetime",
        10: "missing_customer_id",
        11: "duplicate_line",
    }
    assert result.accepted == 1 and result.accepted + result.rejected == result.rows_read == 11
