"""Erasing a customer from the transaction lake.

Each part of the tenant that holds a row of the customer is rewritten without those rows, under
the same key (a whole-object put: a local rename or one S3 PUT, so a reader sees the old part
or the new one, never half) — or deleted when nothing else is left in it. Parts keep their
names, so "first stored copy wins" keeps its meaning. Only the `customer_id` column is read to
find the parts. On S3 with bucket versioning the old part stays as a noncurrent version: expire
those with a lifecycle rule (docs/operations.md).
"""

from __future__ import annotations

import io
from urllib.parse import quote

import polars as pl

from retention_trainer.lake import LAKE_SCHEMA, TransactionLake


def _tenant_parts(lake: TransactionLake, tenant_id: str) -> list[str]:
    prefix = f"tenant={quote(tenant_id, safe='')}/"
    return [
        o.key
        for o in lake.store.list(prefix)
        if o.key.rsplit("/", 1)[-1].startswith("part-") and o.key.endswith(".parquet")
    ]


def erase_from_lake(lake: TransactionLake, tenant_id: str, customer_id: str) -> int:
    """Remove every row of the customer from the tenant's lake; returns the rows removed."""
    removed = 0
    for key in _tenant_parts(lake, tenant_id):
        ids = lake.store.scan_parquet([key], LAKE_SCHEMA).select("customer_id").collect()
        hits = int((ids.get_column("customer_id") == customer_id).sum())
        if not hits:
            continue
        part = pl.read_parquet(io.BytesIO(lake.store.get(key)))
        kept = part.filter(pl.col("customer_id").ne_missing(customer_id))
        if kept.is_empty():
            lake.store.delete([key])
        else:
            buffer = io.BytesIO()
            kept.write_parquet(buffer, compression="zstd")
            lake.store.put(key, buffer.getvalue())
        removed += hits
    return removed
