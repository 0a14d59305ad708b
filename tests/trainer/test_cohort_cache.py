"""The cohort cache answers from memory while the tenant's lake is unchanged, and recomputes after
an append or an erasure (local lake and moto S3)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from retention_shared.config import Settings
from retention_shared.service import ServiceContext
from retention_trainer.cohort_cache import CohortCache
from retention_trainer.cohorts import Period, cohort_table
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.lake import TransactionLake
from retention_trainer.lake_erasure import erase_from_lake


def cache_over(lake: TransactionLake) -> CohortCache:
    return CohortCache(LakeConsumer(ServiceContext.create("trainer", Settings()), lake))


async def test_the_cache_recomputes_exactly_when_the_tenants_lake_changed(
    events: pl.DataFrame, lake: TransactionLake
) -> None:
    lake.append(events)
    cache = cache_over(lake)
    first = await cache.table("acme")
    assert first.cells[Period.MONTH].equals(cohort_table(lake.orders("acme")).cells[Period.MONTH])
    assert await cache.table("acme") is first  # warm: nothing read again

    lake.append(events.head(3).with_columns(tenant_id=pl.lit("other")))
    assert await cache.table("acme") is first  # another tenant's write

    newcomer = events.head(1).with_columns(
        event_id=pl.lit("cohort-cache-newcomer"),
        order_id=pl.lit("cohort-cache-newcomer"),
        customer_id=pl.lit("newcomer"),
        occurred_at=pl.lit(datetime(2012, 2, 1, tzinfo=UTC)).cast(events["occurred_at"].dtype),
    )
    lake.append(newcomer)
    appended = await cache.table("acme")
    assert appended is not first
    assert appended.cells[Period.MONTH].filter(cohort="2012-02")["size"].to_list() == [1]

    erase_from_lake(lake, "acme", "newcomer")  # rewrites its part in place
    erased = await cache.table("acme")
    assert erased.cells[Period.MONTH].filter(cohort="2012-02").is_empty()
    assert (await cache.table("nobody")).as_of is None
