"""Reading events off a topic without ever stopping on a bad one.

Subscribers take the raw bytes (`raw_body`) and decode with `decode_event`; what cannot be read
goes to `transactions.rejected` with its reason, and the consumer moves on. A handler wrapped in
`dead_lettering` (with `AckPolicy.NACK_ON_ERROR`) gets a record again after it raised; one it
fails on `poison_max_attempts` times goes to `transactions.rejected` as `poison`. A handler
raises `TransientFailure` when the broker or storage failed rather than the record: that record
is retried after a pause, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaMessage
from prometheus_client import Counter

from retention_shared.events import EventDecodeError, RejectedRecord, RejectReason
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext

log = logging.getLogger(__name__)
Handler = Callable[[bytes, KafkaMessage], Awaitable[None]]
TRANSIENT_RETRY_SECONDS = 1.0


async def raw_body(message: KafkaMessage) -> bytes:
    """FastStream decoder that hands the handler the record's bytes, whatever its headers say."""
    return message.body


def record_location(message: KafkaMessage) -> str:
    record = message.raw_message
    return f"{record.topic}:{record.partition}:{record.offset}"


def _readable(payload: bytes) -> Any:
    try:
        value = json.loads(payload)
        # JSON may hold a lone surrogate ("\ud800") that no UTF-8 output can: keep the text then.
        json.dumps(value, ensure_ascii=False).encode()
        return value
    except (UnicodeError, ValueError):  # JSONDecodeError is a ValueError
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


class TransientFailure(Exception):
    """The broker or a store failed, not the record: the record is retried, never dead-lettered."""


def dead_lettering(ctx: ServiceContext) -> Callable[[Handler], Handler]:
    """Wrap a FastStream handler (subscribed with `AckPolicy.NACK_ON_ERROR`) so that a record it
    keeps failing on goes to the dead-letter topic instead of being redelivered forever."""

    def wrap(handler: Handler) -> Handler:
        failures: dict[str, int] = {}

        @functools.wraps(handler)
        async def handle(body: bytes, message: KafkaMessage) -> None:
            where = record_location(message)
            try:
                await handler(body, message)
            except TransientFailure:
                await asyncio.sleep(TRANSIENT_RETRY_SECONDS)
                raise
            except Exception as error:
                failures[where] = attempts = failures.get(where, 0) + 1
                if attempts < ctx.settings.poison_max_attempts:
                    log.warning(
                        "a record failed; it will be delivered again",
                        extra={"record": where, "attempt": attempts, "error": repr(error)},
                    )
                    raise
                del failures[where]
                log.error(
                    "poison record sent to the dead-letter topic",
                    extra={"record": where, "error": repr(error)},
                )
                reason = RejectReason(
                    code="poison",
                    message=f"failed {attempts} times: {type(error).__name__}: {error}"[:2000],
                )
                await reject_record(ctx, message, [reason])
                POISON_RECORDS.labels(ctx.name, message.raw_message.topic).inc()
            else:
                failures.pop(where, None)

        return handle

    return wrap
