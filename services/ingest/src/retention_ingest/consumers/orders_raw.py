"""`orders.raw`: orders straight from upstream producers; the tenant comes from the `tenant` header.

Offsets are committed only after the handler returns, i.e. after the transaction (or the rejection)
was acknowledged by the broker.
"""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from pydantic import ValidationError
from retention_shared.consuming import raw_body, record_location, reject_record
from retention_shared.events import RejectReason
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext

from retention_ingest.orders import OrderIn, to_order_event
from retention_ingest.publishing import publish_order_events


def register(ctx: ServiceContext) -> None:
    @ctx.broker.subscriber(
        ctx.topics.orders_raw,
        group_id="retention-ingest",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        decoder=raw_body,
    )
    async def on_raw_order(body: bytes, message: KafkaMessage) -> None:
        tenant_id = (message.headers or {}).get("tenant")
        if not tenant_id:
            reason = RejectReason(code="missing_tenant", field="tenant", message="no tenant header")
            await reject_record(ctx, message, [reason])
            return
        try:
            order = OrderIn.model_validate_json(body)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or None
            reason = RejectReason(code="invalid_order", field=field, message=error["msg"])
            await reject_record(ctx, message, [reason], tenant_id=tenant_id)
            return
        event = to_order_event(
            order, tenant_id, ctx.settings.default_timezone, source=record_location(message)
        )
        await publish_order_events(ctx, [event])
        MESSAGES.labels(ctx.name, ctx.topics.orders_raw, "consumed", "ok").inc()
