"""What an upload would make of a file, without uploading it: the upload preview.

The same reading as an upload: format and delimiter from the bytes (`readers.open_table`), the
mapping given, else the tenant's saved one, else a recognized public layout (`mapping`), and the
date format decided on the same rows (`file_ingest.decide_date_format`). It stops before
cleaning: the first rows mapped to canonical fields, dates as the UTC instants they become.

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
    rows: list[dict[str, str | None]] = Field(
        description="The first rows, mapped: each value as read (text), order_datetime as the "
        "UTC instant it becomes (ISO 8601; null where it does not read)."
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
    rows: int = PREVIEW_ROWS,
) -> UploadPreview:
    """The preview of the file at `path` (`work_dir` receives what reading needs to spool)."""
    table = open_table(path, spool_dir=work_dir / "spool", limits=limits)
    mapping, layout, source = _choose_mapping(table, given, saved)
    found, absent = resolve_columns(table.columns, mapping) if mapping else ({}, {})
    problems = _mapping_problems(mapping, absent)
    first = next(table.chunks(DEFAULT_CHUNK_ROWS), None)
    if first is None:
        raise IngestError(IngestErrorCode.NO_ROWS, "the file has a header but no data rows", "file")
    date_format = None
    date_column = found.get("order_datetime")
    head = first.head(rows)
    shown = {name: _text(head.get_column(column)) for name, column in found.items()}
    if date_column is not None and mapping is not None:
        try:
            date_format = decide_date_format(table, date_column, mapping.date_format, first)
            shown["order_datetime"] = _instants(head.get_column(date_column), date_format, timezone)
        except IngestError as error:  # the mapping's column or date_format: for the form
            problems.append(Problem(field=error.field or "order_datetime", problem=error.message))
        except pl.exceptions.PolarsError:  # a nested Parquet column is no date column either
            problems.append(
                Problem(field="order_datetime", problem=f"column {date_column!r} holds no dates")
            )
        if date_format is None:
            shown["order_datetime"] = [None] * head.height
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


def _records(columns: dict[str, list[str | None]], height: int) -> list[dict[str, str | None]]:
    return [{name: values[index] for name, values in columns.items()} for index in range(height)]
