"""The transaction lake: every `OrderEvent` the trainer has seen, as Parquet by tenant and month.

Layout: `<root>/tenant=<tenant>/month=<YYYY-MM>/part-<time>-<id>.parquet` in `ORDER_EVENT_SCHEMA`.
An append writes new part files, each under a temporary name and then renamed, so a crash leaves
whole files or none; the consumer commits its offsets only after `append` returned. A redelivered
event is simply stored again: reads keep the first copy of each event id (as the features service
keeps the first), and `compact` rewrites a month's parts as one deduplicated file.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl

from retention_shared.config import Settings
from retention_shared.event_columns import ORDER_EVENT_SCHEMA
from retention_shared.features import orders_from_event_columns

__all__ = ["TransactionLake", "open_lake"]

_PARTS = "part-*.parquet"


class TransactionLake:
    def __init__(self, root: Path) -> None:
        self.root = root

    def tenant_dir(self, tenant_id: str) -> Path:
        # Tenant ids come from configuration; quoting keeps any of them one safe path segment.
        return self.root / f"tenant={quote(tenant_id, safe='')}"

    def tenants(self) -> list[str]:
        return sorted(unquote(p.name.removeprefix("tenant=")) for p in self.root.glob("tenant=*"))

    def append(self, events: pl.DataFrame) -> int:
        """Store events (any tenants and months); returns the rows written, once durable."""
        if events.is_empty():
            return 0
        events = events.select(pl.col(n).cast(t) for n, t in ORDER_EVENT_SCHEMA.items())
        events = events.with_columns(month=pl.col("occurred_at").dt.strftime("%Y-%m"))
        for (tenant_id, month), part in events.group_by("tenant_id", "month", maintain_order=True):
            directory = self.tenant_dir(str(tenant_id)) / f"month={month}"
            _write_atomically(part.drop("month"), directory / _part_name())
        return events.height

    def events(self, tenant_id: str) -> pl.DataFrame:
        """The tenant's events, each event id once (its first stored copy)."""
        parts = sorted(
            self.tenant_dir(tenant_id).glob(f"month=*/{_PARTS}"),
            key=lambda p: (p.parent.name, p.name),  # months in order; parts in write order
        )
        if not parts:
            return pl.DataFrame(schema=ORDER_EVENT_SCHEMA)
        frame = pl.scan_parquet(parts, schema=ORDER_EVENT_SCHEMA).collect()
        return frame.unique("event_id", keep="first", maintain_order=True)

    def orders(self, tenant_id: str) -> pl.DataFrame:
        """The tenant's orders frame, as the feature definition reads it."""
        return orders_from_event_columns(self.events(tenant_id))

    def compact(self, tenant_id: str, min_parts: int = 8) -> int:
        """Rewrite each month with at least `min_parts` part files as one; returns months done.

        The new file is in place before the old ones go, so a crash in between leaves duplicates
        (read once), never a gap.
        """
        done = 0
        for month in sorted(self.tenant_dir(tenant_id).glob("month=*")):
            parts = sorted(month.glob(_PARTS))
            if len(parts) < min_parts:
                continue
            merged = pl.read_parquet(parts, schema=ORDER_EVENT_SCHEMA)
            _write_atomically(
                merged.unique("event_id", keep="first", maintain_order=True), month / _part_name()
            )
            for part in parts:
                part.unlink()
            done += 1
        return done

    def size_bytes(self, tenant_id: str) -> int:
        return sum(p.stat().st_size for p in self.tenant_dir(tenant_id).glob(f"month=*/{_PARTS}"))


def _part_name() -> str:
    # Sortable by write time, so "first copy" means first written.
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(temporary, compression="zstd")
    with temporary.open("rb") as written:
        os.fsync(written.fileno())
    temporary.rename(path)


def open_lake(settings: Settings) -> TransactionLake:
    """The lake the settings name: `RETENTION_LAKE_URL` (S3), else `RETENTION_DATA_DIR/lake`."""
    return TransactionLake(Path(settings.data_dir) / "lake")
