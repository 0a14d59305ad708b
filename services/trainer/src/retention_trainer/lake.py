"""The transaction lake: every `OrderEvent` the trainer has seen, as Parquet by tenant and month.

Layout: `tenant=<tenant>/month=<YYYY-MM>/part-<time>-<id>.parquet` in `LAKE_SCHEMA`, under a
local directory (`RETENTION_DATA_DIR/lake`) or an S3 prefix (`RETENTION_LAKE_URL=s3://bucket/p`).
`LAKE_SCHEMA` is the `OrderEvent` columns plus each order's `items` and (categorical) `products`,
derived from its lines when it is written: building training sets then never decodes the lines, which are most
of a part's bytes and most of the time of reading it. Parts written before those two columns
existed are read through their lines instead, until `compact` rewrites their month.
The lake logic is written once over a small `ObjectStore` (list, put whole, get, delete); each
put is atomic (a renamed temporary file locally, one PUT on S3), so a crash leaves whole parts or
none, and the consumer commits its offsets only after `append` returned. A redelivered event is
simply stored again: reads keep the first copy of each event id (as the features service keeps
the first), and `compact` rewrites a month's parts as one deduplicated part.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

import polars as pl

from retention_shared.config import Settings
from retention_shared.event_columns import ORDER_EVENT_SCHEMA
from retention_shared.events import MAX_EVENT_AMOUNT
from retention_shared.features import ORDER_SCHEMA, line_summaries, orders_from_event_columns
from retention_shared.features.orders import CATEGORICAL_PRODUCTS
from retention_shared.s3 import parse_s3_url, s3_client

__all__ = [
    "LAKE_SCHEMA",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "StoredObject",
    "TransactionLake",
    "open_lake",
]


# Products as categoricals: Parquet keeps them dictionary-encoded, and the feature code reads
# their codes without casting strings (conform_orders keeps them categorical).
LAKE_SCHEMA = pl.Schema(
    {**ORDER_EVENT_SCHEMA, "items": ORDER_SCHEMA["items"], "products": CATEGORICAL_PRODUCTS}
)


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    # Changes whenever the object is written again under its key (an erasure rewrites parts in
    # place, possibly at the same size): the modification time locally, the ETag on S3.
    revision: str = ""


class ObjectStore(Protocol):
    """Keys are `/`-separated paths relative to the lake's root."""

    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with `prefix` ("" or ending in "/"), sorted by key."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, durably and whole: readers see all of it or nothing."""
        ...

    def get(self, key: str) -> bytes: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def scan_parquet(self, keys: Sequence[str], schema: pl.Schema) -> pl.LazyFrame:
        """The Parquet objects `keys` as one frame, rows in key order; a column of `schema` that
        an object lacks reads as nulls."""
        ...


class LocalStore:
    """A directory; `put` writes a hidden temporary file, fsyncs it and renames it into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def list(self, prefix: str) -> list[StoredObject]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            # Dot files are temporaries of writes still running (or cut short by a crash).
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                key = path.relative_to(self.root).as_posix()
                found.append(StoredObject(key, stat.st_size, str(stat.st_mtime_ns)))
        return sorted(found, key=lambda o: o.key)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temporary.rename(path)
        # The rename itself is durable only once the directory is.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)

    def scan_parquet(self, keys: Sequence[str], schema: pl.Schema) -> pl.LazyFrame:
        return pl.scan_parquet(
            [self.root / k for k in keys], schema=schema, missing_columns="insert"
        )


class S3Store:
    """A prefix in an S3 bucket (any S3-compatible endpoint); one PUT per object is atomic."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", page_size: int = 1000) -> None:
        self.client = client
        self.bucket = bucket
        self.base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.page_size = page_size

    def list(self, prefix: str) -> list[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self.base + prefix,
            PaginationConfig={"PageSize": self.page_size},
        )
        found = [
            StoredObject(
                item["Key"].removeprefix(self.base), int(item["Size"]), item.get("ETag", "")
            )
            for page in pages
            for item in page.get("Contents", [])
        ]
        return sorted(found, key=lambda o: o.key)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.base + key, Body=data)

    def get(self, key: str) -> bytes:
        response = self.client.get_object(Bucket=self.bucket, Key=self.base + key)
        return bytes(response["Body"].read())

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            chunk = [{"Key": self.base + k} for k in keys[start : start + 1000]]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
            )
            if response.get("Errors"):
                error = response["Errors"][0]
                raise OSError(f"could not delete s3://{self.bucket}/{error['Key']}: {error}")

    def scan_parquet(self, keys: Sequence[str], schema: pl.Schema) -> pl.LazyFrame:
        # One GET per part, several in flight: S3 latency, not bandwidth, bounds a lake read.
        with ThreadPoolExecutor(max_workers=8) as pool:
            blobs = list(pool.map(self.get, keys))
        # Scanned, not read: only the columns a query selects are decoded.
        frames = [
            pl.scan_parquet(io.BytesIO(blob), schema=schema, missing_columns="insert")
            for blob in blobs
        ]
        return pl.concat(frames, how="vertical") if frames else pl.LazyFrame(schema=schema)


class TransactionLake:
    def __init__(self, store: ObjectStore | Path | str) -> None:
        self.store: ObjectStore = (
            LocalStore(Path(store)) if isinstance(store, Path | str) else store
        )

    def tenants(self) -> list[str]:
        heads = {obj.key.split("/", 1)[0] for obj in self.store.list("")}
        return sorted(unquote(h.removeprefix("tenant=")) for h in heads if h.startswith("tenant="))

    def append(self, events: pl.DataFrame) -> int:
        """Store events (any tenants and months); returns the rows written, once durable."""
        self.write(parts := self.parts(events))
        return sum(rows for _, _, rows in parts)

    @staticmethod
    def parts(events: pl.DataFrame) -> list[tuple[str, bytes, int]]:
        """The part files `events` make, (key, Parquet bytes, rows): all the work that depends
        on the events' values, and none of the storage's (a consumer tells the two apart)."""
        # A withdrawal only moves an order between customers' partitions of the features
        # service; the lake holds the order once, by event id, at its highest version.
        events = events.filter(~pl.col("withdrawn"))
        if events.is_empty():
            return []
        events = events.select(pl.col(n).cast(t) for n, t in ORDER_EVENT_SCHEMA.items())
        events = events.with_columns(
            **line_summaries(), month=pl.col("occurred_at").dt.strftime("%Y-%m")
        ).cast({"products": CATEGORICAL_PRODUCTS})
        return [
            (
                f"{_tenant_prefix(str(tenant_id))}month={month}/{_part_name(time.time_ns())}",
                _parquet_bytes(part.drop("month")),
                part.height,
            )
            for (tenant_id, month), part in events.group_by(
                "tenant_id", "month", maintain_order=True
            )
        ]

    def write(self, parts: list[tuple[str, bytes, int]]) -> None:
        for key, data, _ in parts:
            self.store.put(key, data)

    def events(self, tenant_id: str) -> pl.DataFrame:
        """The tenant's events, each event id once (its first stored copy)."""
        return self._scan_events(tenant_id).select(ORDER_EVENT_SCHEMA.names()).collect()

    def orders(self, tenant_id: str) -> pl.DataFrame:
        """The tenant's orders frame, as the feature definition reads it (products categorical,
        or strings if some part predates the derived columns)."""
        # One lazy query over the stored order columns: the lines are never decoded.
        events = self._scan_events(tenant_id).filter(_within_contract())
        orders = events.select(ORDER_SCHEMA.keys()).collect()
        if orders.get_column("products").has_nulls():  # parts from before the derived columns
            return orders_from_event_columns(events)
        return orders

    def extent(self, tenant_id: str) -> tuple[int, datetime | None]:
        """How many orders the tenant's lake holds and when the latest one occurred: the same
        rows `orders` returns, counted without reading their lines or products."""
        found = (
            self._scan_events(tenant_id)
            .filter(_within_contract())
            .select(pl.len().alias("orders"), pl.col("occurred_at").max().alias("last"))
            .collect()
        )
        return int(found["orders"][0]), found["last"][0]

    def _scan_events(self, tenant_id: str) -> pl.LazyFrame:
        # Keys sort as months in order, then parts in write order.
        keys = [o.key for o in self._parts(_tenant_prefix(tenant_id))]
        if not keys:
            return pl.LazyFrame(schema=LAKE_SCHEMA)
        return _latest_versions(self.store.scan_parquet(keys, LAKE_SCHEMA))

    def compact(self, tenant_id: str, min_parts: int = 8) -> int:
        """Rewrite each month with at least `min_parts` part files as one; returns months done.

        The new part is in place before the old ones go, so a crash in between leaves duplicates
        (read once), never a gap. It is named with the time of the first part it replaces, so
        parts appended meanwhile still sort after it and "first copy wins" keeps its meaning.
        """
        months: dict[str, list[str]] = defaultdict(list)
        for obj in self._parts(_tenant_prefix(tenant_id)):
            months[obj.key.rsplit("/", 1)[0]].append(obj.key)
        done = 0
        for month, keys in sorted(months.items()):
            if len(keys) < min_parts:
                continue
            merged = (
                _latest_versions(self.store.scan_parquet(keys, LAKE_SCHEMA))
                # Parts from before the derived columns get them now.
                .with_columns(
                    pl.coalesce(name, derived.cast(LAKE_SCHEMA[name]))
                    for name, derived in line_summaries().items()
                )
                .collect()
            )
            first_written = int(keys[0].rsplit("/", 1)[1].split("-")[1])
            self.store.put(f"{month}/{_part_name(first_written)}", _parquet_bytes(merged))
            self.store.delete(keys)
            done += 1
        return done

    def state(self, tenant_id: str) -> str:
        """A digest of the tenant's parts (keys, sizes, revisions): equal digests, equal data.
        Any write, compaction or erasure changes it; results derived from the lake cache on it."""
        digest = hashlib.sha256()
        for part in self._parts(_tenant_prefix(tenant_id)):
            digest.update(f"{part.key}\0{part.size}\0{part.revision}\n".encode())
        return digest.hexdigest()

    def size_bytes(self, tenant_id: str) -> int:
        return sum(o.size for o in self._parts(_tenant_prefix(tenant_id)))

    def _parts(self, prefix: str) -> list[StoredObject]:
        return [
            o
            for o in self.store.list(prefix)
            if o.key.rsplit("/", 1)[-1].startswith("part-") and o.key.endswith(".parquet")
        ]


def _latest_versions(scan: pl.LazyFrame) -> pl.LazyFrame:
    """Each event id once: its highest version (an amended order), the first stored copy of it.
    Parts from before amendments have no version column: their rows are version 0."""
    scan = scan.with_columns(pl.col("version").fill_null(0))
    # The window costs a pass over the lake; only tenants that amended an order pay it.
    if scan.select(pl.col("version").max()).collect().item():
        scan = scan.filter(pl.col("version") == pl.col("version").max().over("event_id"))
    return scan.unique("event_id", keep="first", maintain_order=True)


def _within_contract() -> pl.Expr:
    """Rows the `OrderEvent` contract accepts today. Parts written before it bounded amounts may
    hold an infinite or 1e13 total, which would fail every training run of the tenant (money is
    summed in 64-bit millionths): such a row is left out of reading, never of the stored data."""
    total = pl.col("total")
    return total.is_finite() & (total.abs() <= MAX_EVENT_AMOUNT)


def _tenant_prefix(tenant_id: str) -> str:
    # Tenant ids come from configuration; quoting keeps any of them one safe path segment.
    return f"tenant={quote(tenant_id, safe='')}/"


def _part_name(written_ns: int) -> str:
    # Sortable by write time, so "first copy" means first written.
    return f"part-{written_ns:020d}-{uuid.uuid4().hex[:8]}.parquet"


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def open_lake(settings: Settings) -> TransactionLake:
    """The lake the settings name: `RETENTION_LAKE_URL` (S3), else `RETENTION_DATA_DIR/lake`."""
    if settings.lake_url:
        bucket, prefix = parse_s3_url(settings.lake_url)
        return TransactionLake(S3Store(s3_client(settings), bucket, prefix))
    return TransactionLake(LocalStore(Path(settings.data_dir) / "lake"))
