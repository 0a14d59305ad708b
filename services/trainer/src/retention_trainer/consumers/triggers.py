"""`retrain-requests` and `drift-events` → training runs (coalesced per tenant by the manager)."""

from __future__ import annotations

import logging
from typing import Annotated

from faststream.kafka import KafkaMessage
from pydantic import Field

from retention_shared.events import (
    DriftDetected,
    DriftKind,
    EventDecodeError,
    RetrainRequested,
    decode_event,
)
from retention_shared.kafka.dead_letters import DeadLetters
from retention_shared.kafka.subscribers import record_of, subscriber
from retention_shared.service import ServiceContext
from retention_trainer.runs.queue import RunManager
from retention_trainer.store import Trigger

log = logging.getLogger(__name__)

GROUP_ID = "retention-trainer.triggers"
TrainingTrigger = Annotated[RetrainRequested | DriftDetected, Field(discriminator="event_type")]


def as_trigger(event: RetrainRequested | DriftDetected) -> Trigger:
    if isinstance(event, DriftDetected) and event.kind is DriftKind.PERFORMANCE:
        realized, expected = event.realized.get("roc_auc"), event.expected.get("roc_auc")
        detail = (
            f"model {event.model_version}: realized churn ROC-AUC {realized:.3f} against the "
            f"backtest's {expected:.3f} for its scores as of {event.window.start:%Y-%m-%d %H:%M}Z"
            if realized is not None and expected is not None
            else f"model {event.model_version}: realized churn accuracy fell"
        )
        return Trigger("performance", detail, event.detected_at)
    if isinstance(event, DriftDetected):
        drifted = ", ".join(
            f"{name} {psi:.2f}" for name, psi in sorted(event.psi.items()) if psi > event.threshold
        )
        detail = f"model {event.model_version}: PSI over {event.threshold} for {drifted or '-'}"
        return Trigger("drift", detail, event.detected_at)
    return Trigger(event.reason.value, event.detail, event.requested_at)


def register(ctx: ServiceContext, runs: RunManager) -> None:
    dead_letters = DeadLetters(ctx)

    @subscriber(ctx, "retrain-requests", "drift-events", group_id=GROUP_ID)
    async def on_trigger(body: bytes, message: KafkaMessage) -> None:
        try:
            event = decode_event(TrainingTrigger, body)
        except EventDecodeError as error:
            await dead_letters.reject(record_of(message), [error.as_reason()])
            return
        record = runs.submit(event.tenant_id, as_trigger(event))
        log.info(
            "training trigger",
            extra={
                "tenant_id": event.tenant_id,
                "trigger": event.event_type,
                "run_id": record.run_id,
            },
        )
        ctx.counts.consumed(record_of(message).topic, ok=1)
