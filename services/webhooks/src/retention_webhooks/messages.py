"""Which events become which webhook messages, and what a message's body and id are.

| topic | event | webhook type |
| customer-scores | CustomerScore | score.changed |
| model-events | ModelPublished (not ModelRejected) | model.published |
| drift-events | DriftDetected | drift.detected |
| upload-events | UploadCompleted | upload.completed |

The body is `{"type", "timestamp", "data"}` (Standard Webhooks' payload shape): `timestamp` is
when the event happened, `data` the event as published. The id (`webhook-id`) is the event's own
`event_id` where it has one, else derived from the record's bytes: the same record read again
(after a crash or a rebalance) is the same message, so a receiver can drop duplicates by id.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum

from retention_shared.events import (
    CustomerScore,
    DriftDetected,
    ModelEvent,
    ModelPublished,
    UploadCompleted,
    decode_event,
)
from retention_webhooks.store import Message


class EventType(StrEnum):
    SCORE_CHANGED = "score.changed"
    MODEL_PUBLISHED = "model.published"
    DRIFT_DETECTED = "drift.detected"
    UPLOAD_COMPLETED = "upload.completed"


# The topics the dispatcher consumes (declared names), with the webhook type each carries.
TOPIC_TYPES = {
    "customer-scores": EventType.SCORE_CHANGED,
    "model-events": EventType.MODEL_PUBLISHED,
    "drift-events": EventType.DRIFT_DETECTED,
    "upload-events": EventType.UPLOAD_COMPLETED,
}


Announced = CustomerScore | ModelPublished | DriftDetected | UploadCompleted


def decode(kind: EventType, value: bytes) -> Announced | None:
    """The event a record holds, or None for one webhooks do not announce (a ModelRejected).
    Raises EventDecodeError for a record that is not a readable event."""
    if kind is EventType.SCORE_CHANGED:
        return decode_event(CustomerScore, value)
    if kind is EventType.MODEL_PUBLISHED:
        event = decode_event(ModelEvent, value)
        return event if isinstance(event, ModelPublished) else None
    if kind is EventType.DRIFT_DETECTED:
        return decode_event(DriftDetected, value)
    return decode_event(UploadCompleted, value)


def occurred_at(event: Announced) -> datetime:
    if isinstance(event, CustomerScore):
        return event.scored_at
    if isinstance(event, ModelPublished):
        return event.published_at
    if isinstance(event, DriftDetected):
        return event.detected_at
    return event.completed_at


def message_id(event: Announced, value: bytes) -> str:
    own = getattr(event, "event_id", None)  # CustomerScore's deterministic id, where present
    if isinstance(own, str) and own:
        return own
    return "msg_" + hashlib.sha256(value).hexdigest()[:32]


def message_of(kind: EventType, event: Announced, value: bytes) -> Message:
    body = {
        "type": kind.value,
        "timestamp": occurred_at(event).isoformat().replace("+00:00", "Z"),
        "data": event.model_dump(mode="json"),
    }
    return Message(
        id=message_id(event, value),
        tenant_id=event.tenant_id,
        type=kind.value,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        customer_id=event.customer_id if isinstance(event, CustomerScore) else None,
    )
