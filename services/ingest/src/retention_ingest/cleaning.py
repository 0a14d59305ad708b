"""The one cleaning function: raw rows in the retailer's columns -> clean order lines + rejects.

Every input path (file uploads chunk by chunk, `orders.raw` records, canonical JSON orders with
the identity mapping) goes through `clean_rows`, vectorized in polars. Every row comes out either
as an order line or as a reject with exactly one reason code, so accepted + rejected = rows read.

Reason precedence — a row with several problems is rejected for the FIRST that applies:

1. `missing_customer_id`, `invalid_customer_id`
2. `missing_order_id`, `invalid_order_id` (when the mapping has `order_id`)
3. `missing_order_datetime`, `unparseable_order_datetime`
4. `order_datetime_too_old` (before `min_order_date`), `future_order_datetime` (later than the
   moment ingest received it plus `max_future_skew_hours`)
5. `missing_product_id`, `invalid_product_id` (line-level mappings), then `invalid_currency`,
   `invalid_country` (when mapped; they are optional, so only a value that is not printable text
   of at most 256 characters)
6. `missing_quantity`, `unparseable_quantity` (when mapped)
7. `missing_unit_price`, `unparseable_unit_price` (or `..._order_total`)
8. `non_positive_price`: unit price <= 0 (or an order total of exactly 0)
9. `zero_quantity`
10. `quantity_out_of_range`: |quantity| > `max_quantity`
11. `order_total_out_of_range` (`order_total` mappings: the row's |total| > `max_order_total`)
12. `unit_price_out_of_range`: unit price > `max_unit_price` (`order_total` mappings: the
    derived |total| / |quantity|)

"Missing" is null, empty or whitespace-only (or NaN in a typed column); "unparseable" is a value
present that does not read as its type; "invalid" is an id longer than 256 characters or holding
an unprintable character (control, bidi override, lone surrogate: `retention_shared.safe_text`).
Without a mapped `order_id`, the order id is built from the customer id, so a customer id longer
than 247 characters is invalid there. The bounds (`bounds.OrderBounds`) come from settings and
keep every value and product finite: |quantity| <= 1e6 and price <= 1e6 by default, so no
quantity × price overflows. Three rules need all rows and are applied later, by `order_events`,
to the lines that passed the above (so they never double-count a row):
13. `duplicate_line`: the 2nd and later copies of a row whose every original column is identical
    (compared by customer and a 64-bit hash of the whole row as read);
14. `conflicting_customer_id`: the lines of an order (and kind) that names two customers — their
    event ids would collide, so none of them is guessed at;
15. `order_total_out_of_range`: every line of an order (and kind) whose summed |amount| exceeds
    `max_order_total` — the order is one event, so it is taken whole or not at all.

Normalization:
- ids (customer, order, product) become trimmed text; a float-typed or float-looking id such as
  `17850.0` (or a decimal `17850.0000000000`) becomes `17850`. Column types that hold no field
  (lists, structs, booleans, ...) never get here: `column_types` refuses them up front.
- numbers accept a decimal comma (`2,55`) when there is no dot; inf/NaN text is unparseable.
- cancellations — order id `C` followed by a digit (UCI's `C536379`), a negative quantity, or a
  negative order total — are kept as `kind=cancellation` with negative quantities, so their
  totals are negative and net against spend. Other lines are purchases (quantity > 0).
- non-product codes (POST, DOT, M, D, BANK CHARGES, AMAZONFEE, CRUK, ...) are kept: they are
  money on the customer's invoice (postage paid, a discount's `C` line nets as a cancellation).
  Adjustments `A...` carry negative prices and are rejected as `non_positive_price`.
- `order_total` mappings: each row's total is its line amount; `quantity` (if mapped, else 1)
  keeps its meaning and `unit_price = |total| / |quantity|`, so quantity × unit_price = total.
  `order_events` turns an order's rows into ONE synthetic line (product `order-total`).
  Without `order_id`, an order is a customer's purchases on one local day: `<customer>-<YYYYMMDD>`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from retention_ingest.bounds import OrderBounds, utc_now
from retention_ingest.dates import UTC_DATETIME, DateFormat, parse_datetimes
from retention_ingest.mapping import ColumnMapping
from retention_shared.safe_text import MAX_ID_LENGTH, invalid_id_expr

SYNTHETIC_PRODUCT_ID = "order-total"
TEXT_FIELDS_CHECKED = ("currency", "country")
# Without a mapped order id, orders are `<customer>-<YYYYMMDD>`: the suffix's share of the limit.
DERIVED_ORDER_SUFFIX = len("-YYYYMMDD")
# In precedence order; see the module docstring.
REASON_CODES = (
    "missing_customer_id",
    "invalid_customer_id",
    "missing_order_id",
    "invalid_order_id",
    "missing_order_datetime",
    "unparseable_order_datetime",
    "order_datetime_too_old",
    "future_order_datetime",
    "missing_product_id",
    "invalid_product_id",
    "invalid_currency",
    "invalid_country",
    "missing_quantity",
    "unparseable_quantity",
    "missing_unit_price",
    "unparseable_unit_price",
    "missing_order_total",
    "unparseable_order_total",
    "non_positive_price",
    "zero_quantity",
    "quantity_out_of_range",
    "unit_price_out_of_range",
    "duplicate_line",
    "conflicting_customer_id",
    "order_total_out_of_range",  # also row-level for `order_total` mappings, before unit price
)

LINE_COLUMNS = (
    "row",
    "order_id",
    "customer_id",
    "kind",
    "occurred_at",
    "product_id",
    "quantity",
    "unit_price",
    "amount",
    "currency",
    "country",
    "row_hash",
    "original",
)


@dataclass(frozen=True)
class CleaningPlan:
    """Everything `clean_rows` needs besides the rows; fixed for a whole file."""

    mapping: ColumnMapping
    date_format: DateFormat
    timezone: str = "Europe/London"
    default_currency: str | None = None
    bounds: OrderBounds = field(default_factory=OrderBounds)
    # When ingest received the rows: how far in the future they may be dated is measured from it.
    received_at: datetime = field(default_factory=utc_now)


@dataclass
class CleanedRows:
    """`lines`: LINE_COLUMNS, one per accepted row (`original` is the row as read, typed).
    `rejects`: row, reason, original (the row as read, every value as text)."""

    lines: pl.DataFrame
    rejects: pl.DataFrame

    @property
    def rows(self) -> int:
        return self.lines.height + self.rejects.height

    def reason_counts(self) -> Counter[str]:
        counts = self.rejects.get_column("reason").value_counts()
        return Counter(dict(zip(counts["reason"], counts["count"], strict=True)))


def _nested_json(cell: object) -> str | None:
    if cell is None:
        return None
    plain = cell.to_list() if isinstance(cell, pl.Series) else cell
    return json.dumps(plain, default=str, ensure_ascii=False)


def _as_text(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return value.dt.to_string("%Y-%m-%d %H:%M:%S%.f")
    if isinstance(dtype, pl.Duration):
        return value.dt.to_string("iso")
    if dtype == pl.Binary:  # not necessarily UTF-8
        return value.bin.encode("hex")
    if dtype.is_nested() or dtype == pl.Object:
        # An unmapped nested column of a rejected row, as JSON (polars casts no list to text);
        # only rejects go through here.
        return value.map_elements(_nested_json, return_dtype=pl.String, skip_nulls=False)
    return value if dtype == pl.String else value.cast(pl.String)


def original_as_text(original: pl.Expr, schema: pl.Schema) -> pl.Expr:
    """The `original` struct (the row as read, typed) with every value as text, for rejects."""
    return pl.struct(
        _as_text(original.struct.field(name), dtype).alias(name) for name, dtype in schema.items()
    ).alias("original")


# Cleaning runs in two stages so that no expression repeats a costly sub-expression (eager
# polars does not eliminate common sub-expressions): stage 1 reads each source column once into
# trimmed text or a number, stage 2 normalizes those plain columns.


def _stripped_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """Stage 1 for ids and text: the value as trimmed text; a whole float is written as an int."""
    column = pl.col(name)
    if dtype.is_float():
        return (
            pl.when(column.is_finite() & (column == column.floor()))
            .then(column.cast(pl.Int64, strict=False).cast(pl.String))
            .when(column.is_finite())
            .then(column.cast(pl.String))
        )
    if isinstance(dtype, pl.Decimal):  # 17850.0000000000 is the id 17850
        return column.cast(pl.String).str.replace(r"\.0*$", "")
    return column.cast(pl.String).str.strip_chars()


def _normalized_id(text: pl.Expr) -> pl.Expr:
    """Stage 2: "17850.0" (a float id written as text) is 17850; empty is missing."""
    whole = text.str.strip_suffix(".0")
    return (
        pl.when(text == "")
        .then(pl.lit(None, pl.String))
        .when(text.str.ends_with(".0") & whole.cast(pl.Int64, strict=False).is_not_null())
        .then(whole)
        .otherwise(text)
    )


def _number_source(name: str, dtype: pl.DataType) -> pl.Expr:
    """Stage 1 for numbers: a typed number as Float64 (NaN kept), anything else trimmed text."""
    column = pl.col(name)
    return (
        column.cast(pl.Float64) if dtype.is_numeric() else column.cast(pl.String).str.strip_chars()
    )


def _present(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Stage 2: the source had a value (not null, empty or NaN)."""
    if dtype.is_numeric():
        return value.is_not_null() & ~value.is_nan()
    return value.fill_null("") != ""


def _number(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Stage 2: the value as a finite Float64, else null; "2,55" reads as 2.55."""
    if not dtype.is_numeric():
        decimal_comma = value.str.contains(r"^[+-]?\d*,\d+$", literal=False)
        value = (
            pl.when(decimal_comma)
            .then(value.str.replace(",", ".", literal=True))
            .otherwise(value)
            .cast(pl.Float64, strict=False)
        )
    return pl.when(value.is_finite()).then(value)


def _field_reads(
    columns: dict[str, str], schema: pl.Schema, by_total: bool
) -> tuple[list[str], list[str], list[str], list[pl.Expr], list[pl.Expr]]:
    """The mapped id, number and text fields, and the stage 1 and stage 2 expressions that read
    them (see above); `columns` is canonical field -> the file's column."""
    amount_field = "order_total" if by_total else "unit_price"
    id_fields = [f for f in ("customer_id", "order_id", "product_id") if f in columns]
    if by_total and "product_id" in id_fields:
        id_fields.remove("product_id")  # replaced by the synthetic line
    number_fields = [f for f in ("quantity", amount_field) if f in columns]
    text_fields = [f for f in ("currency", "country") if f in columns]

    def dtype_of(field: str) -> pl.DataType:
        return schema[columns[field]]

    stage1 = [
        *(_stripped_text(columns[f], dtype_of(f)).alias(f) for f in id_fields + text_fields),
        *(_number_source(columns[f], dtype_of(f)).alias(f) for f in number_fields),
    ]
    stage2 = [
        *(_normalized_id(pl.col(f)).alias(f) for f in id_fields),
        *(pl.when(pl.col(f) != "").then(pl.col(f)).alias(f) for f in text_fields),
        *(_number(pl.col(f), dtype_of(f)).alias(f"{f}_value") for f in number_fields),
        *(_present(pl.col(f), dtype_of(f)).alias(f"{f}_present") for f in number_fields),
    ]
    return id_fields, number_fields, text_fields, stage1, stage2


def read_fields(raw: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """Each mapped field as cleaning reads it, before any rule: ids normalized (`17850.0` is
    `17850`), text trimmed (empty is null), numbers as Float64 (null where they do not read).
    For a mapping not complete enough to clean with (the upload preview while it is filled in);
    `columns` is canonical field -> the file's column, `order_datetime` is left out."""
    wanted = {name: column for name, column in columns.items() if name != "order_datetime"}
    by_total = "order_total" in wanted and "unit_price" not in wanted
    ids, numbers, texts, stage1, stage2 = _field_reads(wanted, raw.schema, by_total)
    read = raw.lazy().select(stage1).with_columns(stage2)
    values = read.with_columns(pl.col(f"{name}_value").alias(name) for name in numbers)
    return values.select(name for name in wanted if name in (*ids, *numbers, *texts)).collect()


def _judged(raw: pl.DataFrame, plan: CleaningPlan, first_row: int) -> pl.DataFrame:
    """Every row read (stage 1 and 2) with its `reason`: the first rule it fails, else null."""
    mapping = plan.mapping
    columns = mapping.columns()
    schema = raw.schema
    id_fields, number_fields, _, stage1_fields, stage2 = _field_reads(
        columns, schema, mapping.uses_order_total
    )
    date_column = columns["order_datetime"]
    stage1 = [
        pl.int_range(first_row, first_row + pl.len(), dtype=pl.Int64).alias("row"),
        # The row as read: its hash finds exact duplicates, its values go to rejects.csv.
        pl.struct(pl.all()).hash(seed=7).alias("row_hash"),
        pl.struct(pl.all()).alias("original"),
        *stage1_fields,
    ]
    date_type = schema[date_column]
    if date_type.is_temporal():
        stage1.append(pl.col(date_column).is_not_null().alias("order_datetime_present"))
    else:
        stage1.append(
            _present(pl.col(date_column).cast(pl.String).str.strip_chars(), pl.String).alias(
                "order_datetime_present"
            )
        )
    occurred_at = parse_datetimes(raw.get_column(date_column), plan.date_format, plan.timezone)
    work = (
        raw.lazy().select(stage1).with_columns(stage2).with_columns(occurred_at=pl.lit(occurred_at))
    )
    for name in ("currency", "country"):
        if name not in columns:
            default = plan.default_currency if name == "currency" else None
            work = work.with_columns(pl.lit(default, pl.String).alias(name))

    checks = _row_checks(plan, id_fields, number_fields)
    reason: pl.Expr = pl.when(checks[0][1]).then(pl.lit(checks[0][0]))
    for code, failed in checks[1:]:
        reason = reason.when(failed).then(pl.lit(code))
    return work.with_columns(reason=reason.otherwise(pl.lit(None, pl.String))).collect()


def clean_rows(raw: pl.DataFrame, plan: CleaningPlan, first_row: int = 1) -> CleanedRows:
    """Clean one batch of rows; `first_row` numbers them (1-based data rows of the file)."""
    work_frame = _judged(raw, plan, first_row)
    rejects = work_frame.filter(pl.col("reason").is_not_null()).select(
        "row", "reason", original_as_text(pl.col("original"), raw.schema)
    )
    lines = (
        work_frame.lazy()
        .filter(pl.col("reason").is_null())
        .with_columns(_line_values(plan.mapping, plan.timezone))
        .select(LINE_COLUMNS)
        .collect()
    )
    return CleanedRows(lines=lines, rejects=rejects)


def judge_rows(raw: pl.DataFrame, plan: CleaningPlan, first_row: int = 1) -> pl.DataFrame:
    """`clean_rows` without the split, for showing rows (the upload preview): every row, in
    order, as LINE_COLUMNS plus `reason` (null for a line `clean_rows` accepts). A rejected
    row's values are what did read (null where they did not); the file-level rules of
    `order_events` are not applied."""
    return (
        _judged(raw, plan, first_row)
        .lazy()
        .with_columns(_line_values(plan.mapping, plan.timezone))
        .select(*LINE_COLUMNS, "reason")
        .collect()
    )


def _row_checks(
    plan: CleaningPlan, id_fields: list[str], number_fields: list[str]
) -> list[tuple[str, pl.Expr]]:
    """(reason, rule) pairs in precedence order (see the module docstring)."""
    mapping, bounds = plan.mapping, plan.bounds
    by_total = mapping.uses_order_total
    columns = mapping.columns()

    def id_checks(name: str, max_length: int = MAX_ID_LENGTH) -> list[tuple[str, pl.Expr]]:
        value = pl.col(name)
        invalid = invalid_id_expr(value)
        if max_length < MAX_ID_LENGTH:
            invalid = invalid | (value.str.len_chars() > max_length)
        return [(f"missing_{name}", value.is_null()), (f"invalid_{name}", invalid)]

    occurred_at = pl.col("occurred_at")
    checks = id_checks(
        "customer_id",
        MAX_ID_LENGTH if "order_id" in columns else MAX_ID_LENGTH - DERIVED_ORDER_SUFFIX,
    )
    if "order_id" in id_fields:
        checks += id_checks("order_id")
    checks += [
        ("missing_order_datetime", ~pl.col("order_datetime_present")),
        ("unparseable_order_datetime", occurred_at.is_null()),
        ("order_datetime_too_old", occurred_at < pl.lit(bounds.earliest, UTC_DATETIME)),
        (
            "future_order_datetime",
            occurred_at > pl.lit(bounds.latest(plan.received_at), UTC_DATETIME),
        ),
    ]
    if "product_id" in id_fields:
        checks += id_checks("product_id")
    # Kept with the order in every event and the lake: no control or bidi characters there.
    checks += [
        (f"invalid_{name}", invalid_id_expr(pl.col(name)))
        for name in TEXT_FIELDS_CHECKED
        if name in columns
    ]
    for name in number_fields:
        checks += [
            (f"missing_{name}", ~pl.col(f"{name}_present")),
            (f"unparseable_{name}", pl.col(f"{name}_value").is_null()),
        ]
    money = pl.col("order_total_value" if by_total else "unit_price_value")
    checks.append(("non_positive_price", (money == 0) if by_total else (money <= 0)))
    quantity = pl.col("quantity_value").abs() if "quantity" in columns else pl.lit(1.0)
    if "quantity" in columns:
        checks += [
            ("zero_quantity", quantity == 0),
            ("quantity_out_of_range", quantity > bounds.max_quantity),
        ]
    if by_total:
        checks += [
            ("order_total_out_of_range", money.abs() > bounds.max_order_total),
            ("unit_price_out_of_range", money.abs() / quantity > bounds.max_unit_price),
        ]
    else:
        checks.append(("unit_price_out_of_range", money > bounds.max_unit_price))
    return checks


def _line_values(mapping: ColumnMapping, timezone: str) -> list[pl.Expr]:
    """Kind, signed quantity, unit price and amount of accepted rows (see the module docstring)."""
    columns = mapping.columns()
    quantity = pl.col("quantity_value") if "quantity" in columns else pl.lit(1.0)
    money = pl.col("order_total_value" if mapping.uses_order_total else "unit_price_value")
    if "order_id" in columns:
        order_id = pl.col("order_id")
        # UCI's "C536379"; C-then-digit keeps ids like "CUST-1" purchases.
        cancelled = order_id.str.contains(r"^C\d") | (quantity < 0)
    else:
        local_day = pl.col("occurred_at").dt.convert_time_zone(timezone).dt.strftime("%Y%m%d")
        order_id = pl.concat_str(pl.col("customer_id"), pl.lit("-"), local_day)
        cancelled = quantity < 0
    if mapping.uses_order_total:
        cancelled = cancelled | (money < 0)
    sign = pl.when(cancelled).then(pl.lit(-1.0)).otherwise(pl.lit(1.0))
    signed_quantity = sign * quantity.abs()
    if mapping.uses_order_total:
        unit_price = money.abs() / quantity.abs()
        amount = sign * money.abs()
        product_id = pl.lit(SYNTHETIC_PRODUCT_ID)
    else:
        unit_price = money
        amount = signed_quantity * unit_price
        product_id = pl.col("product_id")
    return [
        order_id.alias("order_id"),
        pl.when(cancelled).then(pl.lit("cancellation")).otherwise(pl.lit("purchase")).alias("kind"),
        pl.col("occurred_at").cast(UTC_DATETIME),
        product_id.alias("product_id"),
        signed_quantity.alias("quantity"),
        unit_price.alias("unit_price"),
        amount.alias("amount"),
    ]
