"""Publishing order events and waiting for the broker's acknowledgement of every one."""

from __future__ import annotations

import asyncio

from retention_shared.events import OrderEvent
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key


async def publish_order_events(ctx: ServiceContext, events: list[OrderEvent]) -> None:
    """Send all events, then wait for every acknowledgement; raises if any was not acknowledged."""
    pending = [
        await ctx.broker.publish(
            event.to_bytes(),
            ctx.topics.transactions,
            key=customer_key(event.tenant_id, event.customer_id),
            no_confirm=True,
        )
        for event in events
    ]
    await asyncio.gather(*pending)
    MESSAGES.labels(ctx.name, ctx.topics.transactions, "published", "ok").inc(len(events))
