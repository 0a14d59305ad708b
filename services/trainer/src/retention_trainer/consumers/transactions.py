"""`transactions` → the trainer's own history of every order, and the retraining triggers."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Annotated

from faststream import AckPolicy
from faststream.kafka import KafkaMessage
from pydantic import Field

from retention_shared.consuming import raw_body, reject_undecodable
from retention_shared.events import (
    DriftDetected,
    EventDecodeError,
    OrderEvent,
    RetrainRequested,
    decode_event,
)
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext

log = logging.getLogger(__name__)


def register(ctx: ServiceContext, orders_seen: Counter[str]) -> None:
    @ctx.broker.subscriber(
        ctx.topics.transactions,
        group_id="retention-trainer.lake",
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
        orders_seen[event.tenant_id] += 1
        MESSAGES.labels(ctx.name, ctx.topics.transactions, "consumed", "ok").inc()

    @ctx.broker.subscriber(
        ctx.topics.retrain_requests,
        ctx.topics.drift_events,
        group_id="retention-trainer.triggers",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        decoder=raw_body,
    )
    async def on_trigger(body: bytes, message: KafkaMessage) -> None:
        try:
            event = decode_event(TrainingTrigger, body)
        except EventDecodeError as error:
            await reject_undecodable(ctx, message, error)
            return
        log.info(
            "training trigger", extra={"tenant_id": event.tenant_id, "trigger": event.event_type}
        )
        MESSAGES.labels(ctx.name, message.raw_message.topic, "consumed", "ok").inc()


TrainingTrigger = Annotated[RetrainRequested | DriftDetected, Field(discriminator="event_type")]
