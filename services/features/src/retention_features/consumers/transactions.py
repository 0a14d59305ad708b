"""`transactions` → per-customer state → `CustomerFeatures` on `customer-features`."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from retention_shared.consuming import raw_body, reject_undecodable
from retention_shared.events import (
    CustomerFeatures,
    EventDecodeError,
    OrderEvent,
    SourceOffset,
    decode_event,
)
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key

from retention_features.state import FeatureStore


def register(ctx: ServiceContext, store: FeatureStore) -> None:
    @ctx.broker.subscriber(
        ctx.topics.transactions,
        group_id="retention-features",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        decoder=raw_body,
    )
    async def on_transaction(body: bytes, message: KafkaMessage) -> None:
        try:
            event = decode_event(OrderEvent, body)
        except EventDecodeError as error:
            await reject_undecodable(ctx, message, error)
            return
        history = store.add(event)
        summary = history.summary()
        features = CustomerFeatures(
            tenant_id=event.tenant_id,
            customer_id=event.customer_id,
            as_of=summary.last_event_at or event.occurred_at,
            features=history.features(),
            history=summary,
            source=SourceOffset(
                partition=message.raw_message.partition, offset=message.raw_message.offset
            ),
        )
        await ctx.broker.publish(
            features.to_bytes(),
            ctx.topics.customer_features,
            key=customer_key(event.tenant_id, event.customer_id),
        )
        MESSAGES.labels(ctx.name, ctx.topics.transactions, "consumed", "ok").inc()
        MESSAGES.labels(ctx.name, ctx.topics.customer_features, "published", "ok").inc()
