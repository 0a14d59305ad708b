"""Hostile values injected into real rows: every bound is a reason code, nothing reaches an event
that could overflow a total, move a tenant's clock or hide a formula."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from retention_ingest.bounds import OrderBounds
from retention_ingest.cleaning import REASON_CODES, CleaningPlan
from retention_ingest.dates import DateFormat
from retention_ingest.file_ingest import FileIngestResult, ingest_file
from retention_ingest.mapping import ColumnMapping
from retention_ingest.records import CANONICAL_MAPPING, clean_records, flatten_record
from retention_shared.config import Settings
from tests.support.paths import TEST_DATA

SLICE = TEST_DATA / "online_retail_slice.parquet"
# The slice's last day is 2011-12-09; orders are received a day later.
RECEIVED_AT = datetime(2011, 12, 10, 12, 0, tzinfo=UTC)


def real_rows(count: int) -> pl.DataFrame:
    """`count` distinct real purchase lines (customer, positive quantity and price), in file order,
    as the text a CSV export holds."""
    frame = pl.read_parquet(SLICE)
    return (
        frame.filter(
            pl.col("CustomerID").is_not_null()
            & (pl.col("Quantity") > 0)
            & (pl.col("UnitPrice") > 0)
            & ~pl.col("InvoiceNo").str.starts_with("C")
        )
        .unique(maintain_order=True)
        .head(count)
        .with_columns(
            pl.col("CustomerID").cast(pl.Int64).cast(pl.String),
            pl.col("InvoiceDate").dt.strftime("%Y-%m-%d %H:%M:%S"),
            pl.col("Quantity").cast(pl.String),
            pl.col("UnitPrice").cast(pl.String),
        )
    )


def with_values(frame: pl.DataFrame, row: int, **values: str) -> pl.DataFrame:
    """`frame` with row `row` (0-based) holding `values` in the named columns."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value))
        .otherwise(pl.col(column))
        .alias(column)
        for column, value in values.items()
    )


def ingest(frame: pl.DataFrame, tmp_path: Path, **options: object) -> FileIngestResult:
    # Parquet of text columns: a CSV holding NUL in its first lines is refused as binary.
    frame.write_parquet(tmp_path / "export.parquet")
    return ingest_file(
        tmp_path / "export.parquet",
        tenant_id="acme",
        source="upload:test",
        work_dir=tmp_path / "work",
        received_at=options.pop("received_at", RECEIVED_AT),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def reasons_by_row(result: FileIngestResult) -> dict[int, str]:
    return dict(result.rejects().select("row", "reason").collect().iter_rows())


def assert_finite_events(result: FileIngestResult) -> None:
    events = result.events().collect()
    lines = events.explode("lines").unnest("lines")
    for column in (events["total"], lines["quantity"], lines["unit_price"]):
        assert column.is_finite().all(), column
    assert (events["occurred_at"] <= RECEIVED_AT + timedelta(days=1)).all()


HOSTILE = [
    # (column, value, reason)
    ("CustomerID", "x" * 257, "invalid_customer_id"),
    ("CustomerID", "17850\x00", "invalid_customer_id"),
    ("CustomerID", "\x1b[31m17850", "invalid_customer_id"),
    ("CustomerID", "\u202e05871", "invalid_customer_id"),  # right-to-left override
    ("InvoiceNo", "5" * 300, "invalid_order_id"),
    ("InvoiceNo", "536365\x07", "invalid_order_id"),
    ("StockCode", "85123A\u2066", "invalid_product_id"),
    ("StockCode", "P" * 1000, "invalid_product_id"),
    ("Country", "United\x1b[2J Kingdom", "invalid_country"),
    ("Country", "\u202eKU", "invalid_country"),
    ("Country", "K" * 257, "invalid_country"),
    ("InvoiceDate", "1969-12-31 23:59:59", "order_datetime_too_old"),
    ("InvoiceDate", "1900-01-01 00:00:00", "order_datetime_too_old"),
    ("InvoiceDate", "2011-12-11 12:00:01", "future_order_datetime"),  # received + 24h + 1s
    ("InvoiceDate", "2030-01-01 00:00:00", "future_order_datetime"),
    ("Quantity", "1e308", "quantity_out_of_range"),
    ("Quantity", "-1000001", "quantity_out_of_range"),
    ("Quantity", "10000000", "quantity_out_of_range"),
    ("UnitPrice", "1e308", "unit_price_out_of_range"),
    ("UnitPrice", "1000000.01", "unit_price_out_of_range"),
]


@pytest.mark.parametrize(("column", "value", "reason"), HOSTILE)
def test_each_bound_is_a_reason_code(tmp_path: Path, column: str, value: str, reason: str) -> None:
    frame = with_values(real_rows(40), 7, **{column: value})
    result = ingest(frame, tmp_path)
    assert reasons_by_row(result) == {8: reason}
    assert result.accepted == 39 and result.rows_read == 40
    assert reason in REASON_CODES
    assert_finite_events(result)


def test_values_at_the_bounds_are_accepted(tmp_path: Path) -> None:
    frame = real_rows(40)
    frame = with_values(frame, 1, CustomerID="c" * 256, StockCode="p" * 256)
    frame = with_values(frame, 2, InvoiceDate="1970-01-01 00:00:00", Quantity="1000000")
    frame = with_values(frame, 3, InvoiceDate="2011-12-11 12:00:00", UnitPrice="1000000")
    frame = with_values(frame, 4, Quantity="-1000000", InvoiceNo="C" + "9" * 255)
    result = ingest(frame, tmp_path, timezone="UTC")
    assert reasons_by_row(result) == {}
    assert result.accepted == 40


def test_one_row_with_several_problems_gets_the_first_reason(tmp_path: Path) -> None:
    frame = real_rows(10)
    frame = with_values(frame, 0, CustomerID="\x00", InvoiceDate="2030-01-01", Quantity="1e308")
    frame = with_values(frame, 1, InvoiceDate="2030-01-01 00:00", UnitPrice="1e308")
    frame = with_values(frame, 2, Quantity="1e308", UnitPrice="1e308")
    frame = with_values(frame, 3, Quantity="0", UnitPrice="1e308")
    frame = with_values(frame, 4, StockCode="", InvoiceDate="1950-06-01 10:00")
    result = ingest(frame, tmp_path)
    assert reasons_by_row(result) == {
        1: "invalid_customer_id",
        2: "future_order_datetime",
        3: "quantity_out_of_range",
        4: "zero_quantity",
        5: "order_datetime_too_old",
    }


def test_an_order_over_the_total_is_rejected_whole(tmp_path: Path) -> None:
    """Each line is within its bounds, the order is not: every line of it goes, with one code."""
    frame = real_rows(60)
    order = frame.row(20, named=True)["InvoiceNo"]
    lines = frame.filter(pl.col("InvoiceNo") == order).height
    assert lines >= 2  # a real multi-line invoice
    big = frame.with_columns(
        pl.when(pl.col("InvoiceNo") == order)
        .then((pl.int_range(pl.len()) + 60_000).cast(pl.String))  # distinct lines stay distinct
        .otherwise(pl.col("Quantity"))
        .alias("Quantity"),
        pl.when(pl.col("InvoiceNo") == order)
        .then(pl.lit("900"))
        .otherwise(pl.col("UnitPrice"))
        .alias("UnitPrice"),
    )  # 54,000,000 a line: two or more lines pass 1e8
    result = ingest(big, tmp_path)
    assert set(reasons_by_row(result).values()) == {"order_total_out_of_range"}
    assert len(reasons_by_row(result)) == lines
    assert order not in result.events().collect()["order_id"].to_list()
    assert result.accepted == 60 - lines


def test_duplicates_do_not_count_towards_an_orders_total(tmp_path: Path) -> None:
    frame = real_rows(10)
    row = frame.row(0, named=True)["InvoiceNo"]
    priced = with_values(frame, 0, Quantity="80000", UnitPrice="900")  # 72,000,000
    copy = priced.head(1)
    result = ingest(pl.concat([priced, copy]), tmp_path)
    assert reasons_by_row(result) == {11: "duplicate_line"}
    assert row in result.events().collect()["order_id"].to_list()


def test_1e308_times_1e308_cannot_make_infinity_anywhere(tmp_path: Path) -> None:
    frame = real_rows(30)
    for row in range(0, 30, 3):
        frame = with_values(frame, row, Quantity="1e308", UnitPrice="1e308")
    frame = with_values(frame, 1, Quantity="-1e308")
    frame = with_values(frame, 2, UnitPrice="1.7976931348623157e308")
    result = ingest(frame, tmp_path)
    assert result.accepted + result.rejected == result.rows_read == 30
    assert result.rejected == 12
    assert_finite_events(result)
    assert math.isfinite(result.net_total)


def test_bounds_come_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        max_quantity=50,
        max_unit_price=5,
        max_order_total=200,
        max_future_skew_hours=0,
        min_order_date="2010-12-02",
    )
    frame = real_rows(200)
    result = ingest(frame, tmp_path, bounds=OrderBounds.from_settings(settings))
    source = frame.with_row_index("row", offset=1).with_columns(
        pl.col("Quantity").cast(pl.Float64), pl.col("UnitPrice").cast(pl.Float64)
    )
    reasons = reasons_by_row(result)
    early = source.filter(pl.col("InvoiceDate") < "2010-12-02")["row"].to_list()
    assert early and all(reasons[row] == "order_datetime_too_old" for row in early)
    late = source.filter(pl.col("InvoiceDate") >= "2010-12-02")
    many = late.filter(pl.col("Quantity") > 50)["row"].to_list()
    assert many and all(reasons[row] == "quantity_out_of_range" for row in many)
    dear = late.filter((pl.col("Quantity") <= 50) & (pl.col("UnitPrice") > 5))["row"].to_list()
    assert dear and all(reasons[row] == "unit_price_out_of_range" for row in dear)
    assert (result.events().collect()["total"].abs() <= 200).all()


def test_order_total_mappings_bound_the_row_total_and_the_derived_price(tmp_path: Path) -> None:
    """CDNOW's real rows (customer, date, CDs, dollar value) with hostile values."""
    lines = (TEST_DATA / "cdnow_sample_slice.txt").read_text().splitlines()[:80]
    fields = [line.split() for line in lines]
    # Past the 50 lines the format is recognized by (which must look like CDNOW).
    fields[60][4] = "1000000000"  # a $1e9 purchase
    fields[65][3], fields[65][4] = "1e-300", "5.00"  # $5 for 1e-300 CDs: price 5e300
    fields[70][4] = "1e308"
    path = tmp_path / "cdnow.txt"
    path.write_text("\n".join("  ".join(row) for row in fields) + "\n")
    result = ingest_file(path, tenant_id="acme", source="upload:test", work_dir=tmp_path / "w")
    assert reasons_by_row(result) == {
        61: "order_total_out_of_range",
        66: "unit_price_out_of_range",
        71: "order_total_out_of_range",
    }
    events = result.events().collect()
    assert events["total"].is_finite().all()
    prices = events.explode("lines").unnest("lines")["unit_price"]
    assert (prices <= 1_000_000).all()


def test_json_orders_name_the_field_of_each_bound() -> None:
    """The same rules for one-by-one orders (HTTP, orders.raw), with the field in each reject."""
    real = real_rows(3).row(0, named=True)
    base = {
        "order_id": real["InvoiceNo"],
        "customer_id": real["CustomerID"],
        "order_datetime": real["InvoiceDate"],
        "lines": [
            {"product_id": real["StockCode"], "quantity": 6, "unit_price": 2.55},
            {"product_id": "POST", "quantity": 1, "unit_price": 18.0},
        ],
    }
    hostile = [
        {**base, "customer_id": "\ud800"},  # a lone surrogate: JSON allows it, UTF-8 cannot
        {**base, "customer_id": "c" * 1_000_000},
        {**base, "order_datetime": "2030-01-01T00:00:00"},
        {**base, "lines": [{**base["lines"][0], "quantity": 1e308, "unit_price": 1e308}]},
        {**base, "lines": [{**base["lines"][0], "unit_price": 2e6}, base["lines"][1]]},
        {**base, "lines": [{**base["lines"][0], "quantity": 1e6, "unit_price": 1e6}]},
        {**base, "lines": [{**base["lines"][0], "product_id": "\x1b[2J"}, base["lines"][1]]},
        {**base, "currency": "GBP\x00"},
        {**base, "country": "\ud800"},  # stored as U+001A before: a control character
    ]
    hostile = [{**order, "order_id": f"T{i}"} for i, order in enumerate(hostile)]
    plan = CleaningPlan(CANONICAL_MAPPING, DateFormat.iso(), received_at=RECEIVED_AT)
    result = clean_records(
        [flatten_record(order) for order in hostile],
        plan,
        tenant_id="acme",
        source="http",
        order_ids=[order["order_id"] for order in hostile],
    )
    problems = [
        [(r.reason, r.field, r.line) for r in outcome.rejected_lines] for outcome in result.outcomes
    ]
    assert problems == [
        [("invalid_customer_id", "customer_id", 0), ("invalid_customer_id", "customer_id", 1)],
        [("invalid_customer_id", "customer_id", 0), ("invalid_customer_id", "customer_id", 1)],
        [
            ("future_order_datetime", "order_datetime", 0),
            ("future_order_datetime", "order_datetime", 1),
        ],
        [("quantity_out_of_range", "quantity", 0)],
        [("unit_price_out_of_range", "unit_price", 0)],
        [("order_total_out_of_range", "lines", 0)],
        [("invalid_product_id", "product_id", 0)],
        [("invalid_currency", "currency", 0), ("invalid_currency", "currency", 1)],
        [("invalid_country", "country", 0), ("invalid_country", "country", 1)],
    ]
    accepted = [outcome.accepted for outcome in result.outcomes]
    assert accepted == [False, False, False, False, True, False, True, False, False]
    assert result.events["total"].is_finite().all()


def test_order_ids_built_from_long_customer_ids_stay_within_the_id_limit(tmp_path: Path) -> None:
    """Without an order id column an order is `<customer>-<YYYYMMDD>`: that must be an id too."""
    frame = with_values(real_rows(10), 0, CustomerID="c" * 250).with_columns(
        pl.col("UnitPrice").alias("Total")
    )
    frame.write_csv(tmp_path / "daily.csv")
    mapping = ColumnMapping(
        customer_id="CustomerID", order_datetime="InvoiceDate", order_total="Total"
    )
    result = ingest_file(
        tmp_path / "daily.csv",
        tenant_id="acme",
        source="upload:test",
        work_dir=tmp_path / "w",
        mapping=mapping,
        received_at=RECEIVED_AT,
    )
    assert reasons_by_row(result) == {1: "invalid_customer_id"}
    assert result.events().collect()["order_id"].str.len_chars().max() <= 256


FORMULAS = ["=cmd|' /C calc'!A0", "@SUM(1)", "+1+1", "-2+3", "\t=1+2", "\r=1+2"]


def test_rejects_csv_cannot_carry_a_formula(tmp_path: Path) -> None:
    """Formula-like ids are printable (so valid), but rejected for another reason they land in
    rejects.csv, where no cell may start a formula; unprintable ids are rejected themselves."""
    frame = real_rows(20)
    for row, formula in enumerate(FORMULAS):
        frame = with_values(frame, row, CustomerID=formula, Quantity="0")
    frame = with_values(frame, 10, CustomerID="17850\x00")
    frame = with_values(frame, 11, CustomerID="\x1b]0;owned\x07")
    frame = with_values(frame, 12, CustomerID="\u202e05871")
    frame = with_values(frame, 13, StockCode='=HYPERLINK("http://evil","x")', UnitPrice="0")
    result = ingest(frame, tmp_path)
    reasons = reasons_by_row(result)
    assert [reasons[row + 1] for row in range(len(FORMULAS))] == ["zero_quantity"] * 6
    assert [reasons[11], reasons[12], reasons[13]] == ["invalid_customer_id"] * 3
    assert "17850\x00" not in result.events().collect()["customer_id"].to_list()

    written = pl.read_csv(result.write_rejects_csv(tmp_path / "rejects.csv"), infer_schema=False)
    by_row = {int(row["row"]): row for row in written.iter_rows(named=True)}
    assert [by_row[row + 1]["CustomerID"] for row in range(len(FORMULAS))] == [
        "'" + formula for formula in FORMULAS
    ]
    assert by_row[14]["StockCode"] == '\'=HYPERLINK("http://evil","x")'
    for row in written.iter_rows():
        for cell in row:
            assert cell is None or not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_a_clean_file_has_an_empty_rejects_csv(tmp_path: Path) -> None:
    """No row rejected: no rejects part is written, and rejects.csv is a header alone."""
    result = ingest(real_rows(50), tmp_path)
    assert result.rejected == 0 and result.accepted == 50
    assert result.rejects().collect().height == 0
    written = result.write_rejects_csv(tmp_path / "rejects.csv").read_text()
    assert written.splitlines() == [
        "row,reason,InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    ]


def test_json_nan_and_infinity_are_missing_values_as_in_typed_files() -> None:
    """JSON parsers accept NaN and Infinity; a NaN customer id was customer "nan"."""
    real = real_rows(1).row(0, named=True)
    order = {
        "order_id": real["InvoiceNo"],
        "customer_id": float("nan"),
        "order_datetime": real["InvoiceDate"],
        "lines": [{"product_id": real["StockCode"], "quantity": 6, "unit_price": 2.55}],
    }
    orders = [
        order,
        {**order, "order_id": float("inf"), "customer_id": real["CustomerID"]},
        {
            **order,
            "customer_id": real["CustomerID"],
            "lines": [{**order["lines"][0], "quantity": float("-inf")}],
        },
    ]
    plan = CleaningPlan(CANONICAL_MAPPING, DateFormat.iso(), received_at=RECEIVED_AT)
    result = clean_records(
        [flatten_record(o) for o in orders], plan, tenant_id="acme", source="http"
    )
    assert [[r.reason for r in o.rejected_lines] for o in result.outcomes] == [
        ["missing_customer_id"],
        ["missing_order_id"],
        ["missing_quantity"],
    ]
    assert result.events.is_empty()


def test_objects_and_lists_where_a_value_belongs_are_rejected() -> None:
    """An `orders.raw` record is any JSON: a nested object is no customer "{'id': 1}"."""
    real = real_rows(1).row(0, named=True)
    record = {
        "InvoiceNo": real["InvoiceNo"],
        "CustomerID": {"id": real["CustomerID"]},
        "InvoiceDate": real["InvoiceDate"],
        "lines": [
            {"StockCode": ["85123A"], "Quantity": 6, "UnitPrice": 2.55},
            {"StockCode": "85123A", "Quantity": {"n": 6}, "UnitPrice": 2.55},
        ],
    }
    mapping = ColumnMapping(
        customer_id="CustomerID",
        order_id="InvoiceNo",
        order_datetime="InvoiceDate",
        product_id="StockCode",
        quantity="Quantity",
        unit_price="UnitPrice",
    )
    plan = CleaningPlan(mapping, DateFormat.iso(), received_at=RECEIVED_AT)
    nested_customer = clean_records([flatten_record(record)], plan, tenant_id="a", source="raw")
    assert [r.reason for r in nested_customer.outcomes[0].rejected_lines] == [
        "invalid_customer_id",
        "invalid_customer_id",
    ]
    record["CustomerID"] = real["CustomerID"]
    nested_lines = clean_records([flatten_record(record)], plan, tenant_id="a", source="raw")
    assert [r.reason for r in nested_lines.outcomes[0].rejected_lines] == [
        "invalid_product_id",
        "unparseable_quantity",
    ]
