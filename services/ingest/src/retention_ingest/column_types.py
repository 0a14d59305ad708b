"""Which column types a mapped field can be read from: a typed (Parquet) column that cannot hold
the field at all refuses the upload up front, before any row is read or published.

CSV, TSV and XLSX are read as text, so only Parquet columns have other types. Readable:
- ids (customer, order, product) and text (currency, country): text, categorical/enum, integers,
  floats and decimals (`17850.0000000000` reads as `17850`), and an all-null column (every row
  is then rejected as missing, or, for the optional text fields, has no value);
- numbers (quantity, unit price, order total): integers, floats, decimals (as Float64; values
  beyond the bounds are rejected per row), text, categorical/enum, all-null;
- the order date: date, datetime, text, categorical/enum, all-null.
Refused: lists, arrays, maps, structs, binary, durations, times of day, booleans and any other
type for every field;
dates for ids and numbers; numbers for the order date (an integer epoch is ambiguous: seconds,
milliseconds or days). The preview lists the same refusals as problems (`type_problems`).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from retention_ingest.errors import IngestError, IngestErrorCode

DATE_FIELD = "order_datetime"
NUMBER_FIELDS = ("quantity", "unit_price", "order_total")


def _readable(dtype: pl.DataType) -> bool:
    """Types some field reads (which field: `type_problem`); every other type is refused."""
    return (
        dtype.is_numeric()
        or dtype in (pl.String, pl.Categorical, pl.Null, pl.Date)
        or isinstance(dtype, pl.Enum | pl.Categorical | pl.Datetime)
    )


def _kind(dtype: pl.DataType) -> str | None:
    """What a column holds when that type never reads as a field, in the user's words."""
    if _readable(dtype):
        return None
    if isinstance(dtype, pl.List | pl.Array):
        return "lists"
    if isinstance(dtype, pl.Struct):
        return "structs (nested records)"
    if dtype.is_nested():
        return f"nested values ({dtype})"
    if dtype == pl.Binary:
        return "binary values"
    if isinstance(dtype, pl.Duration):
        return "durations"
    if dtype == pl.Time:
        return "times of day"
    if dtype == pl.Boolean:
        return "true/false values"
    return f"values of type {dtype}"


def type_problem(field: str, column: str, dtype: pl.DataType) -> str | None:
    """Why `column` (of type `dtype`) cannot be read as `field`; None if it can."""
    kind = _kind(dtype)
    if kind is None and field == DATE_FIELD and dtype.is_numeric():
        kind = "numbers, not dates (write dates as text or a date/timestamp type)"
    elif kind is None and field != DATE_FIELD and dtype.is_temporal():
        kind = "dates"
    if kind is None:
        return None
    return f"column {column!r} ({field}) holds {kind}; it cannot be read as {field}"


def type_problems(columns: Mapping[str, str], schema: Mapping[str, pl.DataType]) -> dict[str, str]:
    """field -> problem for every mapped field whose column's type cannot be read as it;
    `columns` is canonical field -> the file's column, `schema` the file's types."""
    problems = {}
    for field, column in columns.items():
        dtype = schema.get(column)
        problem = None if dtype is None else type_problem(field, column, dtype)
        if problem is not None:
            problems[field] = problem
    return problems


def check_column_types(
    columns: Mapping[str, str], schema: Mapping[str, pl.DataType] | None
) -> None:
    """Raise `unreadable_column` (naming the first such field) if any mapped column's type
    cannot be read as its field."""
    if schema is None:
        return
    problems = type_problems(columns, schema)
    if problems:
        field, problem = next(iter(problems.items()))
        raise IngestError(IngestErrorCode.UNREADABLE_COLUMN, problem, field)
