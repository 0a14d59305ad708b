"""What an upload would make of a file, without uploading it: the upload preview.

The same reading as an upload: format and delimiter from the bytes (`readers.open_table`), the
mapping given, else the tenant's saved one, else a recognized public layout (`mapping`), and the
date format decided on the same rows (`file_ingest.decide_date_format`). The first rows are then
cleaned as an upload cleans them (`cleaning.judge_rows`, and the file-level rules of
`order_events` within those rows): each mapped field as the import stores it (ids normalized,
numbers as numbers, dates as UTC instants) and, per row, the reason code an upload would reject
it for. While the mapping is incomplete (nothing could be imported yet) the mapped fields are
still read as cleaning reads them (`cleaning.read_fields`), without reasons.

What a mapping decides (a required field left out, a column the file lacks, dates that do not
read) is listed in `problems` so that a mapping form can show it; what no mapping fixes (an
unknown format, a file over the limits, a broken CSV) raises `IngestError` as an upload would.
Nothing is published and no upload is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

from retention_ingest.bounds import OrderBounds, utc_now
from retention_ingest.cleaning import CleaningPlan, judge_rows, read_fields
from retention_ingest.column_types import type_problems
from retention_ingest.dates import DateFormat, parse_datetimes
from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.file_ingest import decide_date_format
from retention_ingest.mapping import (
    CANONICAL_FIELDS,
    FIELD_DESCRIPTIONS,
    KNOWN_LAYOUTS,
    LINE_FIELDS,
    REQUIRED_FIELDS,
    ColumnMapping,
    Layout,
    PartialMapping,
    missing_fields,
    recognize_layout,
    resolve_columns,
)
from retention_ingest.order_events import conflicting_orders, flag_file_level_rejects
from retention_ingest.readers import DEFAULT_CHUNK_ROWS, TableSource, open_table
from retention_ingest.upload_limits import UploadLimits

PREVIEW_ROWS = 20


class CanonicalField(BaseModel):
    name: str
    required: bool = Field(
        description="Required in a line-level file; an order-level one maps order_total instead "
        "of unit_price, and then needs only customer_id and order_datetime."
    )
    description: str


class Problem(BaseModel):
    field: str
    problem: str


class UploadPreview(BaseModel):
    filename: str | None
    format: str = Field(description="csv, tsv, xlsx, parquet or cdnow (from the bytes)")
    layout: str | None = Field(
        description="The recognized public layout, `mapping` when a mapping is used, or null "
        "when the columns match no layout and no mapping was given."
    )
    delimiter: str | None
    date_format: dict[str, Any] | None = Field(
        description='{"order": "day_first" | "month_first" | "iso" | "compact" | "given" | '
        '"native", "pattern", "ambiguous"}; null without a readable date column.'
    )
    columns: list[str] = Field(description="The file's columns, in order.")
    mapping: dict[str, str] = Field(
        description="Canonical field → the file's column, as an upload would apply it (with "
        "`date_format` when one is set); send it back as an upload's `mapping`."
    )
    mapping_source: str | None = Field(description="given, saved, layout, or null")
    canonical_fields: list[CanonicalField]
    rows: list[dict[str, str | float | None]] = Field(
        description="The first rows by canonical field, as an upload stores them: ids as text "
        "normalized as the import does (`17850.0` is `17850`), quantity, unit_price and "
        "order_total as numbers (a cancellation's quantity negative), order_datetime as the "
        "UTC instant it becomes (ISO 8601); null where a value does not read."
    )
    reasons: list[str | None] = Field(
        default_factory=list,
        description="Per row of `rows`, the reason code an upload would reject it for (the "
        "codes of rejects.csv; duplicates and order-wide rules judged within these rows), "
        "null where it would be imported; all null while the mapping is incomplete.",
    )
    source_rows: list[dict[str, str | None]] = Field(
        description="The same rows by the file's own columns, as text."
    )
    problems: list[Problem]
    timezone: str


CANONICAL = [
    CanonicalField(
        name=name,
        required=name in REQUIRED_FIELDS or name in LINE_FIELDS,
        description=FIELD_DESCRIPTIONS[name],
    )
    for name in CANONICAL_FIELDS
]


def preview_file(
    path: Path,
    *,
    work_dir: Path,
    filename: str | None,
    given: PartialMapping | None,
    saved: ColumnMapping | None,
    timezone: str,
    limits: UploadLimits,
    bounds: OrderBounds | None = None,
    rows: int = PREVIEW_ROWS,
) -> UploadPreview:
    """The preview of the file at `path` (`work_dir` receives what reading needs to spool)."""
    table = open_table(path, spool_dir=work_dir / "spool", limits=limits)
    mapping, layout, source = _choose_mapping(table, given, saved)
    found, absent = resolve_columns(table.columns, mapping) if mapping else ({}, {})
    problems = _mapping_problems(mapping, absent)
    # Columns an upload refuses by their type (`column_types`): listed, shown as they are.
    unreadable = type_problems(found, table.schema or {})
    problems += [Problem(field=name, problem=problem) for name, problem in unreadable.items()]
    first = next(table.chunks(DEFAULT_CHUNK_ROWS), None)
    if first is None:
        raise IngestError(IngestErrorCode.NO_ROWS, "the file has a header but no data rows", "file")
    date_format = None
    date_column = found.get("order_datetime")
    head = first.head(rows)
    instants: list[str | None] = [None] * head.height
    if date_column is not None and "order_datetime" in unreadable:
        instants = _text(head.get_column(date_column))
    if date_column is not None and mapping is not None and "order_datetime" not in unreadable:
        try:
            date_format = decide_date_format(table, date_column, mapping.date_format, first)
            instants = _instants(head.get_column(date_column), date_format, timezone)
        except IngestError as error:  # the mapping's column or date_format: for the form
            problems.append(Problem(field=error.field or "order_datetime", problem=error.message))
        except pl.exceptions.PolarsError:  # a nested Parquet column is no date column either
            problems.append(
                Problem(field="order_datetime", problem=f"column {date_column!r} holds no dates")
            )
    values = _as_read(
        head, {name: column for name, column in found.items() if name not in unreadable}
    )
    problems += [
        Problem(field=name, problem=f"column {found[name]!r} holds no text or numbers")
        for name, read in values.items()
        if read is None
    ]
    if date_format is not None and not problems:
        plan = CleaningPlan(
            ColumnMapping(**found, date_format=None),
            date_format,
            timezone,
            bounds=bounds or OrderBounds(),
            received_at=utc_now(),
        )
        shown, reasons = _as_imported(head, plan, found)
    else:
        # A field that did not read shows the column's values as they are.
        shown = {
            name: values.get(name) or _text(head.get_column(column))
            for name, column in found.items()
            if name != "order_datetime"
        }
        reasons = [None] * head.height
    if date_column is not None:
        shown["order_datetime"] = instants
    mapped = dict(found)
    if mapping is not None and mapping.date_format:
        mapped["date_format"] = mapping.date_format
    return UploadPreview(
        filename=filename,
        format=table.file_format.value,
        layout=None if layout is None else layout.value,
        delimiter=table.delimiter,
        date_format=None if date_format is None else date_format.describe(),
        columns=table.columns,
        mapping=mapped,
        mapping_source=source,
        canonical_fields=CANONICAL,
        rows=_records(shown, head.height),
        reasons=reasons,
        source_rows=_records({c: _text(head.get_column(c)) for c in head.columns}, head.height),
        problems=problems,
        timezone=timezone,
    )


def _choose_mapping(
    table: TableSource, given: PartialMapping | None, saved: ColumnMapping | None
) -> tuple[PartialMapping | None, Layout | None, str | None]:
    """As an upload chooses: the given mapping, the saved one, else a recognized layout."""
    if given is not None:
        return given, Layout.MAPPING, "given"
    if saved is not None:
        return saved, Layout.MAPPING, "saved"
    layout = table.layout_hint or recognize_layout(table.columns)
    if layout is None:
        return None, None, None
    return KNOWN_LAYOUTS[layout], layout, "layout"


def _mapping_problems(mapping: PartialMapping | None, absent: dict[str, str]) -> list[Problem]:
    problems = []
    if mapping is None:
        problems.append(
            Problem(
                field="mapping",
                problem="the columns match no known layout (UCI Online Retail I/II, CDNOW); map "
                "the file's columns to the canonical fields",
            )
        )
    problems += [
        Problem(field=name, problem=f"column {wanted!r} is not in the file")
        for name, wanted in absent.items()
    ]
    problems += [
        Problem(field=name, problem="required: map it to one of the file's columns")
        for name in missing_fields(mapping or PartialMapping())
    ]
    if mapping is not None and mapping.unit_price and mapping.order_total:
        problems.append(
            Problem(field="order_total", problem="map either unit_price or order_total, not both")
        )
    return problems


def _as_imported(
    head: pl.DataFrame, plan: CleaningPlan, found: dict[str, str]
) -> tuple[dict[str, list[Any]], list[str | None]]:
    """The mapped fields of `head` as an upload stores them, and why it would reject each row."""
    judged = judge_rows(head, plan)
    accepted = judged.filter(pl.col("reason").is_null()).lazy()
    # Sound within the rows shown: a copy, a second customer or an order over the bound here
    # is one in the whole file too (rows further on may add more).
    file_level = flag_file_level_rejects(
        accepted, conflicting_orders(accepted), plan.bounds.max_order_total
    ).select("row", pl.col("reason").alias("file_reason"))
    judged = (
        judged.lazy()
        .join(file_level, on="row", how="left", maintain_order="left")
        .with_columns(pl.coalesce("reason", "file_reason").alias("reason"))
        .collect()
    )
    # An order_total row is its order's amount; the other fields are the line's own columns.
    # Dates are the instants `preview_file` shows for every mapping, from the same parsing.
    source = {
        name: "amount" if name == "order_total" else name
        for name in found
        if name != "order_datetime"
    }
    shown = {name: judged.get_column(column).to_list() for name, column in source.items()}
    return shown, judged.get_column("reason").to_list()


def _as_read(head: pl.DataFrame, found: dict[str, str]) -> dict[str, list[Any] | None]:
    """Each mapped field (but the date) as cleaning reads it; None for a column it cannot read
    at all (a nested Parquet value), which an upload could not read either."""
    read: dict[str, list[Any] | None] = {}
    for name, column in found.items():
        if name == "order_datetime":
            continue
        try:
            read[name] = read_fields(head, {name: column}).get_column(name).to_list()
        except pl.exceptions.PolarsError:
            read[name] = None
    return read


def _text(values: pl.Series) -> list[str | None]:
    """Each value as text, as the reader holds it (CSV and XLSX are read as text already)."""
    if values.dtype == pl.String:
        return values.to_list()
    if isinstance(values.dtype, pl.Datetime):
        return values.dt.to_string("%Y-%m-%d %H:%M:%S%.f").to_list()
    try:
        return values.cast(pl.String).to_list()
    except pl.exceptions.PolarsError:  # nested Parquet values: Python's own rendering
        return [None if value is None else str(value) for value in values.to_list()]


def _instants(values: pl.Series, date_format: DateFormat, timezone: str) -> list[str | None]:
    parsed = parse_datetimes(values, date_format, timezone)
    return [None if moment is None else moment.isoformat() for moment in parsed.to_list()]


def _records(columns: dict[str, list[Any]], height: int) -> list[dict[str, Any]]:
    return [{name: values[index] for name, values in columns.items()} for index in range(height)]
