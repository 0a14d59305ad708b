"""Reading events off a topic without ever stopping on a bad one.

Subscribers take the raw bytes (`raw_body`) and decode with `decode_event`; what cannot be read
goes to `transactions.rejected` with its reason, and the consumer moves on.
"""

from __future__ import annotations

import json
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from retention_shared.events import EventDecodeError, RejectedRecord, RejectReason
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext


async def raw_body(message: KafkaMessage) -> bytes:
    """FastStream decoder that hands the handler the record's bytes, whatever its headers say."""
    return message.body


def record_location(message: KafkaMessage) -> str:
    record = message.raw_message
    return f"{record.topic}:{record.partition}:{record.offset}"


def _readable(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return payload.decode("utf-8", errors="replace")


async def reject_record(
    ctx: ServiceContext,
    message: KafkaMessage,
    reasons: list[RejectReason],
    tenant_id: str | None = None,
) -> None:
    """Send a consumed record that cannot be processed to the rejected topic, with its reasons."""
    record = message.raw_message
    rejected = RejectedRecord(
        tenant_id=tenant_id,
        source=record.topic,
        source_id=record_location(message),
        record=_readable(message.body),
        reasons=reasons,
    )
    await ctx.broker.publish(rejected.to_bytes(), ctx.topics.transactions_rejected, key=record.key)
    MESSAGES.labels(ctx.name, record.topic, "consumed", "rejected").inc()
    MESSAGES.labels(ctx.name, ctx.topics.transactions_rejected, "published", "ok").inc()


async def reject_undecodable(
    ctx: ServiceContext, message: KafkaMessage, error: EventDecodeError
) -> None:
    await reject_record(ctx, message, [error.as_reason()])


def rejected_payload(record: ConsumerRecord, error: EventDecodeError) -> bytes:
    """The `RejectedRecord` of a record a raw (aiokafka) consumer could not decode."""
    return RejectedRecord(
        source=record.topic,
        source_id=f"{record.topic}:{record.partition}:{record.offset}",
        record=_readable(record.value),
        reasons=[error.as_reason()],
    ).to_bytes()


POISON_RECORDS = Counter(
    "retention_poison_records_total",
    "Records a consumer failed on poison_max_attempts times and sent to the dead-letter path.",
    ["service", "topic"],
)


def poison_payload(record: ConsumerRecord, error: BaseException, attempts: int) -> bytes:
    """The `RejectedRecord` of a record a consumer kept failing on (reason `poison`)."""
    reason = RejectReason(
        code="poison",
        message=f"failed {attempts} times: {type(error).__name__}: {error}"[:2000],
    )
    return RejectedRecord(
        source=record.topic,
        source_id=f"{record.topic}:{record.partition}:{record.offset}",
        record=_readable(record.value),
        reasons=[reason],
    ).to_bytes()
