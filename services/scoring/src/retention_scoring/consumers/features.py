"""`customer-features` → the latest vector per customer; `model-events` → champion changes.

Every scoring instance reads all of `customer-features` (no consumer group): each must be able to
answer for any customer.
"""

from __future__ import annotations

import logging

from faststream.kafka import KafkaMessage

from retention_shared.consuming import raw_body, reject_undecodable
from retention_shared.events import CustomerFeatures, EventDecodeError, ModelEvent, decode_event
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext

log = logging.getLogger(__name__)

LatestFeatures = dict[tuple[str, str], CustomerFeatures]


def register(ctx: ServiceContext, latest: LatestFeatures) -> None:
    @ctx.broker.subscriber(
        ctx.topics.customer_features, auto_offset_reset="earliest", decoder=raw_body
    )
    async def on_features(body: bytes, message: KafkaMessage) -> None:
        try:
            features = decode_event(CustomerFeatures, body)
        except EventDecodeError as error:
            await reject_undecodable(ctx, message, error)
            return
        latest[(features.tenant_id, features.customer_id)] = features
        MESSAGES.labels(ctx.name, ctx.topics.customer_features, "consumed", "ok").inc()

    @ctx.broker.subscriber(ctx.topics.model_events, auto_offset_reset="earliest", decoder=raw_body)
    async def on_model_event(body: bytes, message: KafkaMessage) -> None:
        try:
            event = decode_event(ModelEvent, body)
        except EventDecodeError as error:
            await reject_undecodable(ctx, message, error)
            return
        log.info("model event", extra={"tenant_id": event.tenant_id, "event": event.event_type})
        MESSAGES.labels(ctx.name, ctx.topics.model_events, "consumed", "ok").inc()
