"""Each tenant's cohort table, kept until the tenant's lake data changes.

Computing it means reading the tenant's whole lake; answering from it means filtering a frame of
a few hundred cells. So the table is kept per tenant with the lake's state digest
(`TransactionLake.state`: one listing of the tenant's parts, no data read) and recomputed only
when the digest differs. The digest is taken before the orders are read: a write landing during
the read leaves an entry under the old digest, which the next request finds stale.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from retention_trainer.cohorts import CohortTable, cohort_table
from retention_trainer.consumers.transactions import LakeConsumer

__all__ = ["CohortCache"]


@dataclass
class CohortCache:
    lake: LakeConsumer
    _tables: dict[str, tuple[str, CohortTable]] = field(default_factory=dict)
    # One computation per tenant at a time: a burst of cold requests reads the lake once.
    _locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )

    async def table(self, tenant_id: str) -> CohortTable:
        async with self._locks[tenant_id]:
            state = await asyncio.to_thread(self.lake.lake.state, tenant_id)
            cached = self._tables.get(tenant_id)
            if cached is not None and cached[0] == state:
                return cached[1]
            async with self.lake.reading() as store:
                orders = await asyncio.to_thread(store.orders, tenant_id)
            table = await asyncio.to_thread(cohort_table, orders)
            self._tables[tenant_id] = (state, table)
            return table
