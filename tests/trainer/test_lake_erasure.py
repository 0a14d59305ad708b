"""Erasing a customer from the transaction lake, locally and on S3 (moto over HTTP)."""

from __future__ import annotations

import io

import polars as pl
from polars.testing import assert_frame_equal

from retention_trainer.lake import TransactionLake
from retention_trainer.lake_erasure import erase_from_lake

ERASED = "12437"


def test_every_part_with_the_customer_is_rewritten_without_them(
    lake: TransactionLake, events: pl.DataFrame
) -> None:
    """Appended in three batches (several parts per month) and to another tenant too: after the
    erasure the tenant's lake is its events minus the customer's, no part holds the id, and the
    other tenant keeps its copy of the same id."""
    mine = events["customer_id"] == ERASED
    assert 5 < int(mine.sum()) < events.height
    third = events.height // 3
    for start in (0, third, 2 * third):
        lake.append(events.slice(start, third if start < 2 * third else events.height))
    lake.append(events.filter(mine).with_columns(tenant_id=pl.lit("other")))
    parts_before = len(lake.store.list(""))

    assert erase_from_lake(lake, "acme", ERASED) == int(mine.sum())

    expected = events.filter(~mine).sort("event_id")
    assert_frame_equal(
        lake.events("acme").sort("event_id"), expected.select(lake.events("acme").columns)
    )
    assert lake.events("other").height == int(mine.sum())
    for stored in lake.store.list("tenant=acme/"):
        frame = pl.read_parquet(io.BytesIO(lake.store.get(stored.key)))
        assert not (frame["customer_id"] == ERASED).any(), stored.key
    assert len(lake.store.list("")) <= parts_before  # parts replaced, none added
    assert erase_from_lake(lake, "acme", ERASED) == 0  # a repeated request changes nothing
