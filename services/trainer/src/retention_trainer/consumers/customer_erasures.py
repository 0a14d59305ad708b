"""`customer-erasures` → the customer's rows out of the transaction lake.

The customer goes on the trainer's `ErasureList` first, so the lake consumer stores none of
their orders dated up to the request again (a redelivery, a re-read after the broker lost its
offsets, an export uploaded again); then, with the lake consumer's writes and compaction held
off, every part of the tenant holding a row of theirs is rewritten without it. The consumer
group is named after the data directory: a trainer that lost it (and its list) reads every
request still on the topic again, which rebuilds the list.
"""

from __future__ import annotations

import asyncio

from retention_shared.erasure import ErasureList, instance_name, subscribe_erasures
from retention_shared.events import CustomerErasureRequested
from retention_shared.service import ServiceContext
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.lake_erasure import erase_from_lake


def register(ctx: ServiceContext, lake: LakeConsumer, erasures: ErasureList) -> None:
    instance = instance_name(ctx.settings.data_dir / "trainer")

    async def erase(request: CustomerErasureRequested) -> dict[str, int]:
        tenant_id, customer_id = request.tenant_id, request.customer_id
        await asyncio.to_thread(erasures.add, tenant_id, customer_id, request.requested_at)
        async with lake.writing, lake.reading() as store:
            rows = await asyncio.to_thread(erase_from_lake, store, tenant_id, customer_id)
        return {"lake_rows": rows}

    subscribe_erasures(ctx, f"retention-trainer.erasures.{instance}", instance, erase)
