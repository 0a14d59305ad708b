"""`customer-erasures` → the customer's `score.changed` messages out of the delivery log, sent
or still to send (`WebhookStore.erase_customer`), confirmed on `erasure-audit`. What a
subscriber already received is theirs to erase."""

from __future__ import annotations

import asyncio

from retention_shared.erasure import instance_name, subscribe_erasures
from retention_shared.events import CustomerErasureRequested
from retention_shared.service import ServiceContext
from retention_webhooks.store import WebhookStore


def register(ctx: ServiceContext, store: WebhookStore) -> None:
    instance = instance_name(ctx.settings.data_dir / "webhooks")

    async def erase(request: CustomerErasureRequested) -> dict[str, int]:
        return await asyncio.to_thread(store.erase_customer, request.tenant_id, request.customer_id)

    subscribe_erasures(ctx, f"retention-webhooks.erasures.{instance}", instance, erase)
