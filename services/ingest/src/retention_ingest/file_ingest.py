"""A whole file -> order events, in bounded memory, with every row accounted for.

1. `inspect_file`: format, header, mapping — cheap, so the service can answer a bad upload with a
   4xx before accepting it.
2. Rows are read in chunks and cleaned (`clean_rows`); rejects and clean lines are spilled to
   Parquet in `work_dir`, lines partitioned by a hash of the customer into buckets of about
   `rows_per_bucket` rows (one bucket for files up to that size).
3. Per bucket, a polars query over the spilled lines applies the file-level rules (exact
   duplicates, orders naming two customers, the latter checked across buckets first) and groups
   lines into events — so an order whose lines straddle chunks or are scattered through the
   file is still exactly one event. Memory is about one chunk while reading, one bucket while
   grouping.

Limits (`upload_limits`): reading stops with `upload_too_large` once the decompressed content
passes `max_unpacked_bytes`, and with `too_many_rows` once more than `max_rows` rows were read;
either is raised within one chunk of the limit, before grouping, so memory stays bounded.

The result's events are sorted by time within a bucket (hence, for files within one bucket, in
time order; always in time order per customer, since a customer's orders share a bucket).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from retention_ingest.bounds import OrderBounds, utc_now
from retention_ingest.cleaning import CleaningPlan, clean_rows, original_as_text
from retention_ingest.column_types import check_column_types
from retention_ingest.dates import (
    DATE_ORDERS,
    FAMILIES,
    DateFormat,
    DateFormatDetector,
    check_given_format,
    check_timezone,
)
from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.mapping import ColumnMapping, Layout, resolve_mapping
from retention_ingest.order_events import (
    EVENT_SCHEMA,
    build_order_events,
    conflicting_orders,
    flag_file_level_rejects,
)
from retention_ingest.readers import DEFAULT_CHUNK_ROWS, TableSource, open_table
from retention_ingest.upload_limits import UploadLimits
from retention_shared.safe_text import spreadsheet_safe_expr

DEFAULT_TIMEZONE = "Europe/London"
DEFAULT_ROWS_PER_BUCKET = 2_000_000
# What `rejects()` is when no row was rejected (no Parquet part was written).
_NO_REJECTS = pl.Schema({"row": pl.Int64, "reason": pl.String, "original": pl.Struct([])})


@dataclass(frozen=True)
class IngestProgress:
    """Counts so far, reported after every chunk. `accepted` still includes exact duplicates,
    which are only known once the whole file is read."""

    rows_read: int
    accepted: int
    rejected_by_reason: dict[str, int]


@dataclass(frozen=True)
class FilePlan:
    """What `inspect_file` found: the opened table and the mapping to apply to it."""

    table: TableSource
    layout: Layout
    mapping: ColumnMapping


@dataclass
class FileIngestResult:
    """Counts for the upload status, plus events and rejects stored as Parquet in `work_dir`."""

    file: dict[str, object]
    layout: Layout
    mapping: ColumnMapping
    date_format: DateFormat
    timezone: str
    rows_read: int
    accepted: int
    rejected_by_reason: dict[str, int]
    order_events: int = 0
    purchases: int = 0
    cancellations: int = 0
    customers: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    net_total: float = 0.0
    events_dir: Path = field(default_factory=Path)
    rejects_dir: Path = field(default_factory=Path)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def events(self) -> pl.LazyFrame:
        """All events (EVENT_SCHEMA), lazily."""
        return _scan(self.events_dir, EVENT_SCHEMA)

    def event_batches(self, rows: int = 10_000) -> Iterator[pl.DataFrame]:
        """The events in publishing order, `rows` at a time, without loading them all."""
        for part in sorted(self.events_dir.glob("*.parquet")):
            for batch in pq.ParquetFile(part).iter_batches(batch_size=rows):
                yield pl.from_arrow(batch)  # type: ignore[misc]

    def rejects(self) -> pl.LazyFrame:
        """Rejected rows, in file order: `row` (1-based data row), `reason`, `original` (struct
        of the row's values as text)."""
        return _scan(self.rejects_dir, _NO_REJECTS).sort("row")

    def write_rejects_csv(self, destination: Path) -> Path:
        """rejects.csv: `row`, `reason`, then the file's own columns as they were, except that
        a cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a
        leading `'` (OWASP's CSV-injection rule)."""
        if not any(self.rejects_dir.glob("*.parquet")):
            names = list(self.file.get("columns", []))  # type: ignore[call-overload]
            pl.DataFrame(schema=["row", "reason", *names]).write_csv(destination)
            return destination
        rejects = self.rejects()
        original = rejects.collect_schema()["original"]
        assert isinstance(original, pl.Struct)
        names = {
            column.name: f"original_{column.name}"
            if column.name in ("row", "reason")
            else column.name
            for column in original.fields
        }
        cells = [
            spreadsheet_safe_expr(pl.col("original").struct.field(name)).alias(alias)
            for name, alias in names.items()
        ]
        # Streamed to the file: a file of millions of rejects is never held whole (every value
        # of `original` is text, see `original_as_text`).
        rejects.select("row", "reason", *cells).sink_csv(destination)
        return destination

    def summary(self) -> dict[str, object]:
        """JSON-able counts for the upload status."""
        return {
            "file": self.file,
            "layout": self.layout.value,
            "date_format": self.date_format.describe(),
            "timezone": self.timezone,
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "order_events": self.order_events,
            "purchases": self.purchases,
            "cancellations": self.cancellations,
            "customers": self.customers,
            "first_order_at": self.first_order_at.isoformat() if self.first_order_at else None,
            "last_order_at": self.last_order_at.isoformat() if self.last_order_at else None,
            "net_total": self.net_total,
        }


def _scan(directory: Path, schema: pl.Schema) -> pl.LazyFrame:
    if not any(directory.glob("*.parquet")):
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(directory / "*.parquet")


def inspect_file(
    path: Path,
    *,
    work_dir: Path,
    mapping: ColumnMapping | None = None,
    delimiter: str | None = None,
    sheet: str | int | None = None,
    limits: UploadLimits | None = None,
) -> FilePlan:
    """Open `path` and resolve its mapping; raises `IngestError` for what the header betrays
    (a mapped column of a type that cannot hold its field, `column_types`), and for sizes it
    declares beyond `limits`."""
    table = open_table(
        Path(path),
        spool_dir=Path(work_dir) / "spool",
        delimiter=delimiter,
        sheet=sheet,
        limits=limits,
    )
    layout, resolved = resolve_mapping(table.columns, mapping, table.layout_hint)
    check_column_types(resolved.columns(), table.schema)
    return FilePlan(table=table, layout=layout, mapping=resolved)


def ingest_file(
    path: Path | FilePlan,
    *,
    tenant_id: str,
    source: str,
    work_dir: Path,
    mapping: ColumnMapping | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    default_currency: str | None = None,
    delimiter: str | None = None,
    sheet: str | int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    rows_per_bucket: int = DEFAULT_ROWS_PER_BUCKET,
    on_progress: Callable[[IngestProgress], None] | None = None,
    bounds: OrderBounds | None = None,
    received_at: datetime | None = None,
    limits: UploadLimits | None = None,
) -> FileIngestResult:
    """Read, clean and group a whole file; events and rejects end up under `work_dir`.

    `path` may be a `FilePlan` from `inspect_file` (then mapping/delimiter/sheet/limits of
    reading are the plan's). `source` goes into every event (e.g. "upload:<id>"). `bounds` and
    `received_at` (default: now) decide the range rules of `cleaning`. Raises `IngestError`;
    for `no_usable_rows` the error's `result` holds the counts and rejects.
    """
    work_dir = Path(work_dir)
    check_timezone(timezone)
    limits = limits or UploadLimits()
    plan = (
        path
        if isinstance(path, FilePlan)
        else inspect_file(
            path,
            work_dir=work_dir,
            mapping=mapping,
            delimiter=delimiter,
            sheet=sheet,
            limits=limits,
        )
    )
    table = plan.table
    lines_dir, rejects_dir, events_dir = (
        work_dir / name for name in ("lines", "rejects", "events")
    )
    for directory in (lines_dir, rejects_dir, events_dir):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    buckets = max(1, -(-table.estimated_rows // rows_per_bucket))

    chunks = table.chunks(chunk_rows)
    first = next(chunks, None)
    if first is None:
        raise IngestError(IngestErrorCode.NO_ROWS, "the file has a header but no data rows", "file")
    date_format = _decide_date_format(plan, first, chunk_rows)
    cleaning = CleaningPlan(
        plan.mapping,
        date_format,
        timezone,
        default_currency,
        bounds=bounds or OrderBounds(),
        received_at=received_at or utc_now(),
    )

    rows_read = lines_spilled = 0
    reasons: Counter[str] = Counter()
    for index, chunk in enumerate(chain([first], chunks)):
        limits.check_rows(rows_read + chunk.height)
        cleaned = clean_rows(chunk, cleaning, first_row=rows_read + 1)
        rows_read += chunk.height
        reasons.update(cleaned.reason_counts())
        lines_spilled += cleaned.lines.height
        if not cleaned.rejects.is_empty():
            cleaned.rejects.write_parquet(
                rejects_dir / f"rows-{index:06d}.parquet", statistics=False
            )
        _spill_lines(cleaned.lines, lines_dir, index, buckets)
        if on_progress is not None:
            on_progress(IngestProgress(rows_read, lines_spilled, dict(reasons)))

    accepted = _group_buckets(
        lines_dir,
        rejects_dir,
        events_dir,
        buckets,
        tenant_id,
        source,
        plan.mapping,
        cleaning.bounds.max_order_total,
        reasons,
    )
    shutil.rmtree(lines_dir, ignore_errors=True)
    shutil.rmtree(work_dir / "spool", ignore_errors=True)
    result = FileIngestResult(
        file={**table.describe(), "columns": table.columns},
        layout=plan.layout,
        mapping=plan.mapping,
        date_format=date_format,
        timezone=timezone,
        rows_read=rows_read,
        accepted=accepted,
        rejected_by_reason=dict(sorted(reasons.items())),
        events_dir=events_dir,
        rejects_dir=rejects_dir,
    )
    _count_events(result)
    if accepted == 0:
        top = ", ".join(f"{code} ({count})" for code, count in reasons.most_common(3))
        error = IngestError(
            IngestErrorCode.NO_USABLE_ROWS,
            f"all {rows_read} rows were rejected: {top}; see rejects.csv",
            "file",
        )
        error.result = result
        raise error
    return result


def _decide_date_format(plan: FilePlan, first: pl.DataFrame, chunk_rows: int) -> DateFormat:
    column = plan.mapping.order_datetime
    assert column is not None  # a resolved mapping always has it
    return decide_date_format(plan.table, column, plan.mapping.date_format, first, chunk_rows)


def decide_date_format(
    table: TableSource,
    column: str,
    given: str | None,
    first: pl.DataFrame,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DateFormat:
    """How `column` is read: a mapping's pattern `given` (checked on the first values), a typed
    column natively, or the format detected from the data — among every family, or only the
    order `given` names (`day_first`, `month_first`). `first` is the table's first chunk."""
    values = first.get_column(column)
    if given and given not in DATE_ORDERS:
        pattern = DateFormat.given(given)
        check_given_format(values, pattern, column)
        return pattern
    if isinstance(values.dtype, pl.Datetime) or values.dtype == pl.Date:
        return DateFormat.native()
    detector = DateFormatDetector(families=(given,) if given else tuple(FAMILIES))
    detector.observe(values)
    if not detector.settled:
        # Every date so far reads both day- and month-first (e.g. 1..12 December): look further.
        for chunk in table.chunks(chunk_rows):
            detector.observe(chunk.get_column(column))
            if detector.settled:
                break
    return detector.result(column)


def _spill_lines(lines: pl.DataFrame, lines_dir: Path, index: int, buckets: int) -> None:
    if lines.is_empty():
        return
    if buckets == 1:
        parts: dict[tuple[object, ...], pl.DataFrame] = {(0,): lines}
    else:
        bucket = (pl.col("customer_id").hash(seed=7) % buckets).alias("bucket")
        parts = lines.with_columns(bucket).partition_by("bucket", as_dict=True, include_key=False)
    for (bucket, *_), part in parts.items():
        directory = lines_dir / f"bucket-{bucket:04d}"
        directory.mkdir(exist_ok=True)
        part.write_parquet(
            directory / f"part-{index:06d}.parquet", compression="lz4", statistics=False
        )


def _group_buckets(
    lines_dir: Path,
    rejects_dir: Path,
    events_dir: Path,
    buckets: int,
    tenant_id: str,
    source: str,
    mapping: ColumnMapping,
    max_order_total: float,
    reasons: Counter[str],
) -> int:
    """Apply the file-level rules and build events bucket by bucket; returns lines accepted."""
    bucket_dirs = sorted(lines_dir.glob("bucket-*"))
    if not bucket_dirs:
        return 0
    conflicts = conflicting_orders(pl.scan_parquet(lines_dir / "bucket-*" / "*.parquet")).collect()
    accepted = 0
    for number, directory in enumerate(bucket_dirs):
        spilled = pl.scan_parquet(directory / "*.parquet")
        # The file-level rules only need the keys; the full lines are read once, for grouping.
        keys = spilled.select("row", "customer_id", "row_hash", "order_id", "kind", "amount")
        rejected = (
            flag_file_level_rejects(keys, conflicts.lazy(), max_order_total)
            .filter(pl.col("reason").is_not_null())
            .select("row", "reason")
            .collect()
        )
        good = spilled.drop("original", "row_hash")
        if not rejected.is_empty():
            reasons.update(dict(rejected.get_column("reason").value_counts().iter_rows()))
            rejected_rows = rejected.get_column("row").implode()
            original = spilled.collect_schema()["original"]
            assert isinstance(original, pl.Struct)
            (
                spilled.select("row", "original")
                .filter(pl.col("row").is_in(rejected_rows))
                .join(rejected.lazy(), on="row", how="left", maintain_order="left")
                .select("row", "reason", original_as_text(pl.col("original"), original.to_schema()))
                .sink_parquet(rejects_dir / f"file-{number:04d}.parquet", statistics=False)
            )
            good = good.filter(~pl.col("row").is_in(rejected_rows))
        events = build_order_events(
            good, tenant_id=tenant_id, source=source, synthetic_line=mapping.uses_order_total
        )
        events.write_parquet(events_dir / f"events-{number:04d}.parquet")
        # Counted from the lines that were grouped, not derived from the rejects.
        accepted += good.select(pl.len()).collect().item()
    return accepted


def _count_events(result: FileIngestResult) -> None:
    stats = (
        result.events()
        .select(
            pl.len().alias("events"),
            (pl.col("kind") == "purchase").sum().alias("purchases"),
            (pl.col("kind") == "cancellation").sum().alias("cancellations"),
            pl.col("customer_id").n_unique().alias("customers"),
            pl.col("occurred_at").min().alias("first"),
            pl.col("occurred_at").max().alias("last"),
            pl.col("total").sum().alias("net_total"),
        )
        .collect()
        .row(0, named=True)
    )
    result.order_events = stats["events"]
    result.purchases = stats["purchases"] or 0
    result.cancellations = stats["cancellations"] or 0
    result.customers = stats["customers"] or 0
    result.first_order_at = stats["first"]
    result.last_order_at = stats["last"]
    result.net_total = round(stats["net_total"] or 0.0, 2)
