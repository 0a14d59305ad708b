"""Parquet columns of hostile types, one mapped field at a time, on rows of the UCI slice: a type
that can never hold the field refuses the file before a row is read (and the preview lists the
same problem); a type that reads is imported, row by row, like the untouched slice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.mapping import ColumnMapping
from retention_ingest.preview import preview_file
from retention_ingest.upload_limits import UploadLimits
from tests.ingest.support import ingest
from tests.support.paths import TEST_DATA

ROWS = pl.read_parquet(TEST_DATA / "online_retail_slice.parquet").head(300)
COLUMNS = {
    "customer_id": "CustomerID",
    "order_id": "InvoiceNo",
    "product_id": "StockCode",
    "quantity": "Quantity",
    "unit_price": "UnitPrice",
    "order_datetime": "InvoiceDate",
    "currency": "Currency",
    "country": "Country",
}
MAPPING = ColumnMapping(**COLUMNS)
BASE = ROWS.with_columns(Currency=pl.lit("GBP"))


def _hostile(kind: str, column: str) -> pl.Series:
    """`column` of BASE rewritten as `kind`, the same values where the type can hold them."""
    values = BASE.get_column(column)
    text = values.cast(pl.String)
    height = BASE.height
    if kind == "list":
        return pl.Series(column, [[value] for value in values.to_list()])
    if kind == "struct":
        return pl.Series(column, [{"value": value} for value in text.to_list()])
    if kind == "binary":
        return text.cast(pl.Binary)
    if kind == "duration":
        return pl.Series(column, range(height)).cast(pl.Duration("us"))
    if kind == "boolean":
        return pl.Series(column, [index % 2 == 0 for index in range(height)])
    if kind == "epoch":  # seconds since 1970, as some exports write a timestamp
        return values.dt.epoch("s") if values.dtype.is_temporal() else values
    if kind == "date_for_other":
        return pl.Series(column, [BASE.get_column("InvoiceDate").min()] * height)
    raise AssertionError(kind)


def _file(tmp_path: Path, frame: pl.DataFrame) -> Path:
    path = tmp_path / "hostile.parquet"
    frame.write_parquet(path)
    return path


def _preview_problems(path: Path, tmp_path: Path) -> dict[str, str]:
    shown = preview_file(
        path,
        work_dir=tmp_path / "preview",
        filename=path.name,
        given=None,
        saved=MAPPING,
        timezone="UTC",
        limits=UploadLimits(),
    )
    return {problem.field: problem.problem for problem in shown.problems}


REFUSED = [
    *((field, kind) for field in COLUMNS for kind in ("list", "struct", "binary", "duration")),
    *((field, "boolean") for field in COLUMNS),
    ("order_datetime", "epoch"),
    *((field, "date_for_other") for field in COLUMNS if field != "order_datetime"),
]


@pytest.mark.parametrize(("field", "kind"), REFUSED)
def test_a_column_of_a_type_that_never_holds_its_field_refuses_the_file(
    tmp_path: Path, field: str, kind: str
) -> None:
    column = COLUMNS[field]
    path = _file(tmp_path, BASE.with_columns(_hostile(kind, column)))

    with pytest.raises(IngestError) as refused:
        ingest(path, tmp_path / "work", mapping=MAPPING, timezone="UTC")

    assert refused.value.code is IngestErrorCode.UNREADABLE_COLUMN
    assert refused.value.field == field
    assert repr(column) in refused.value.message and field in refused.value.message
    # Refused while inspecting the header: no row was cleaned, nothing spilled to publish.
    assert not (tmp_path / "work" / "events").exists()
    # The preview names the same column and field, with the same words.
    assert _preview_problems(path, tmp_path) == {field: refused.value.message}


def test_a_good_file_is_imported_after_a_refused_one(tmp_path: Path) -> None:
    bad = _file(tmp_path, BASE.with_columns(_hostile("list", "StockCode")))
    with pytest.raises(IngestError):
        ingest(bad, tmp_path / "bad", mapping=MAPPING, timezone="UTC")
    good = tmp_path / "good.parquet"
    BASE.write_parquet(good)
    result = ingest(good, tmp_path / "good", mapping=MAPPING, timezone="UTC")
    assert result.rows_read == BASE.height and result.accepted > 0


def _same_import(tmp_path: Path, frame: pl.DataFrame) -> None:
    """`frame` imports exactly as BASE does: counts, reasons and events."""
    baseline = ingest(_file(tmp_path, BASE), tmp_path / "base", mapping=MAPPING, timezone="UTC")
    typed = tmp_path / "typed.parquet"
    frame.write_parquet(typed)
    result = ingest(typed, tmp_path / "typed", mapping=MAPPING, timezone="UTC")
    assert (result.rows_read, result.accepted) == (baseline.rows_read, baseline.accepted)
    assert result.rejected_by_reason == baseline.rejected_by_reason
    key = ["order_id", "customer_id", "kind"]
    columns = [*key, "occurred_at", "total", "country", "currency"]
    assert (
        result.events()
        .select(columns)
        .sort(key)
        .collect()
        .equals(baseline.events().select(columns).sort(key).collect())
    )


@pytest.mark.parametrize("field", [f for f in COLUMNS if f != "quantity"])
def test_categorical_and_enum_columns_read_as_their_text(tmp_path: Path, field: str) -> None:
    column = COLUMNS[field]
    values = BASE.get_column(column)
    text = values.dt.strftime("%Y-%m-%d %H:%M:%S") if values.dtype.is_temporal() else values
    text = text.cast(pl.String)
    categories = text.drop_nulls().unique().sort().to_list()
    frame = BASE.with_columns(text.cast(pl.Enum(categories)))
    if field in ("customer_id", "product_id"):
        frame = BASE.with_columns(text.cast(pl.Categorical))
    _same_import(tmp_path, frame)


def test_decimal_ids_and_numbers_read_as_the_floats_they_hold(tmp_path: Path) -> None:
    frame = BASE.with_columns(
        pl.col("CustomerID").cast(pl.Decimal(38, 10)),
        pl.col("UnitPrice").cast(pl.Decimal(38, 10)),
        pl.col("Quantity").cast(pl.Decimal(38, 10)),
    )
    _same_import(tmp_path, frame)


def test_huge_decimals_are_rejected_rows_out_of_range_not_a_crash(tmp_path: Path) -> None:
    huge = Decimal("1234567890123456789012345678.0123456789")  # 28 digits before the point
    prices = [huge if index % 3 == 0 else None for index in range(BASE.height)]
    frame = BASE.with_columns(
        pl.when(pl.Series(prices).is_not_null())
        .then(pl.Series(prices, dtype=pl.Decimal(38, 10)))
        .otherwise(pl.col("UnitPrice").cast(pl.Decimal(38, 10)))
        .alias("UnitPrice")
    )
    path = _file(tmp_path, frame)
    result = ingest(path, tmp_path / "work", mapping=MAPPING, timezone="UTC")
    assert result.accepted + result.rejected == result.rows_read == BASE.height
    rejects = result.rejects().collect()
    huge_rows = {index + 1 for index in range(0, BASE.height, 3)}
    with_customer = set(
        BASE.with_row_index("row", offset=1)
        .filter(pl.col("CustomerID").is_not_null())
        .get_column("row")
        .to_list()
    )
    out_of_range = set(rejects.filter(pl.col("reason") == "unit_price_out_of_range")["row"])
    assert out_of_range == huge_rows & with_customer
    assert _preview_problems(path, tmp_path) == {}


@pytest.mark.parametrize("field", ["customer_id", "product_id", "quantity", "unit_price"])
def test_an_all_null_required_column_rejects_every_row_as_missing(
    tmp_path: Path, field: str
) -> None:
    column = COLUMNS[field]
    path = _file(tmp_path, BASE.with_columns(pl.Series(column, [None] * BASE.height, pl.Null)))
    with pytest.raises(IngestError) as failed:
        ingest(path, tmp_path / "work", mapping=MAPPING, timezone="UTC")
    assert failed.value.code is IngestErrorCode.NO_USABLE_ROWS
    result = failed.value.result
    assert result.rows_read == result.rejected == BASE.height
    assert result.rejected_by_reason[f"missing_{field}"] > 0


@pytest.mark.parametrize("field", ["currency", "country"])
def test_an_all_null_optional_column_imports_rows_without_it(tmp_path: Path, field: str) -> None:
    column = COLUMNS[field]
    frame = BASE.with_columns(pl.Series(column, [None] * BASE.height, pl.Null))
    result = ingest(_file(tmp_path, frame), tmp_path / "work", mapping=MAPPING, timezone="UTC")
    assert result.accepted > 0
    assert result.events().select(pl.col(field).is_null().all()).collect().item()


def test_unmapped_hostile_columns_ride_along_into_rejects_csv(tmp_path: Path) -> None:
    frame = BASE.with_columns(
        tags=pl.Series([["a", "b"]] * BASE.height),
        meta=pl.Series([{"k": 1}] * BASE.height),
        blob=pl.Series([b"\xff\x00"] * BASE.height),
        wait=pl.Series([1_000_000] * BASE.height).cast(pl.Duration("us")),
        flag=pl.Series([True] * BASE.height),
    )
    result = ingest(_file(tmp_path, frame), tmp_path / "work", mapping=MAPPING, timezone="UTC")
    assert result.accepted + result.rejected == result.rows_read == BASE.height
    written = pl.read_csv(result.write_rejects_csv(tmp_path / "rejects.csv"), infer_schema=False)
    assert written.height == result.rejected > 0
    first = written.row(0, named=True)
    assert (first["tags"], first["meta"], first["blob"]) == ('["a", "b"]', '{"k": 1}', "ff00")
    assert (first["wait"], first["flag"]) == ("PT1S", "true")


def test_a_map_column_is_refused_and_a_float16_quantity_reads(tmp_path: Path) -> None:
    table = BASE.to_arrow()
    codes = BASE.get_column("StockCode").to_list()
    as_map = pa.array([[("code", code)] for code in codes], pa.map_(pa.string(), pa.string()))
    mapped = table.set_column(table.schema.get_field_index("StockCode"), "StockCode", as_map)
    path = tmp_path / "map.parquet"
    pq.write_table(mapped, path)
    with pytest.raises(IngestError) as refused:
        ingest(path, tmp_path / "map", mapping=MAPPING, timezone="UTC")
    assert (refused.value.code, refused.value.field) == (
        IngestErrorCode.UNREADABLE_COLUMN,
        "product_id",
    )
    assert "nested values" in refused.value.message

    _same_import(tmp_path, BASE.with_columns(pl.col("Quantity").cast(pl.Float16)))


def test_a_column_polars_cannot_read_refuses_the_file_naming_it(tmp_path: Path) -> None:
    """A decimal of 60 digits (Parquet allows it, polars reads up to 38) crashed every read."""
    table = BASE.to_arrow().append_column(
        "ledger", pa.array([1] * BASE.height).cast(pa.decimal256(60, 2))
    )
    path = tmp_path / "wide_decimal.parquet"
    pq.write_table(table, path)
    with pytest.raises(IngestError) as refused:
        ingest(path, tmp_path / "work", mapping=MAPPING, timezone="UTC")
    assert (refused.value.code, refused.value.field) == (IngestErrorCode.UNREADABLE_COLUMN, "file")
    assert "['ledger']" in refused.value.message
    with pytest.raises(IngestError):
        _preview_problems(path, tmp_path)


def test_csv_cells_that_look_like_json_or_booleans_are_rows_rejected(tmp_path: Path) -> None:
    """CSV holds text only: such cells are per-row problems, the other rows are imported."""
    text = BASE.with_columns(pl.all().cast(pl.String))
    hostile = text.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("true"))
        .otherwise(pl.col("Quantity"))
        .alias("Quantity"),
        pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.lit("[2.55]"))
        .otherwise(pl.col("UnitPrice"))
        .alias("UnitPrice"),
    )
    path = tmp_path / "hostile.csv"
    hostile.write_csv(path)
    clean = tmp_path / "clean.csv"
    text.write_csv(clean)
    result = ingest(path, tmp_path / "work", mapping=MAPPING, timezone="UTC")
    baseline = ingest(clean, tmp_path / "base", mapping=MAPPING, timezone="UTC")
    reasons = dict(result.rejects().select("row", "reason").collect().iter_rows())
    assert (reasons[1], reasons[2]) == ("unparseable_quantity", "unparseable_unit_price")
    assert result.rows_read == baseline.rows_read == BASE.height
    assert result.accepted == baseline.accepted - 2
