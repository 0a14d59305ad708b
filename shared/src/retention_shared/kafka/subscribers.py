"""FastStream subscribers for the occasional event: one record at a time, never stopped by one.

Where records come one by one and a handler does all the work (`orders.raw`, training triggers,
erasure requests), a FastStream subscriber is the simplest consumer. `subscriber` registers a
handler on the service's broker for declared topics with what every such handler here needs:
the record's bytes (`raw_body`: the handler decodes, so an unreadable record is rejected with a
reason instead of failing in the framework), the earliest offset for a new group, the offset
committed only after the handler returned, and dead-lettering (`dead_lettering`): a record the
handler fails on is delivered again, and after `poison_max_attempts` failures goes to
`transactions.rejected` as `poison`; a handler raises `TransientFailure` when the broker or a
store failed rather than the record, and that record is retried after a pause, never
dead-lettered. Batches and manual offsets are `GroupConsumer`'s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaMessage

from retention_shared.kafka.dead_letters import (
    DeadLetters,
    TransientFailure,
    poison_reason,
    record_location,
)
from retention_shared.service import ServiceContext

__all__ = ["Handler", "dead_lettering", "raw_body", "subscriber"]

log = logging.getLogger(__name__)
Handler = Callable[[bytes, KafkaMessage], Awaitable[None]]
TRANSIENT_RETRY_SECONDS = 1.0


def record_of(message: KafkaMessage) -> ConsumerRecord:
    """The consumer record behind `message` (these subscribers take one record at a time)."""
    record = message.raw_message
    assert not isinstance(record, tuple), "a batch subscriber has no single record"
    return record


async def raw_body(message: KafkaMessage) -> bytes:
    """FastStream decoder that hands the handler the record's bytes, whatever its headers say."""
    return message.body


def dead_lettering(ctx: ServiceContext) -> Callable[[Handler], Handler]:
    """Wrap a FastStream handler (subscribed with `AckPolicy.NACK_ON_ERROR`) so that a record it
    keeps failing on goes to the dead-letter topic instead of being redelivered forever."""
    dead_letters = DeadLetters(ctx)

    def wrap(handler: Handler) -> Handler:
        failures: dict[str, int] = {}

        @functools.wraps(handler)
        async def handle(body: bytes, message: KafkaMessage) -> None:
            record = record_of(message)
            where = record_location(record)
            try:
                await handler(body, message)
            except TransientFailure:
                await asyncio.sleep(TRANSIENT_RETRY_SECONDS)
                raise
            except Exception as error:
                failures[where] = attempts = failures.get(where, 0) + 1
                if attempts < dead_letters.attempts:
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
                await dead_letters.reject(record, [poison_reason(error, attempts)])
                dead_letters.counts.poison(record.topic)
            else:
                failures.pop(where, None)

        return handle

    return wrap


def subscriber(ctx: ServiceContext, *topics: str, group_id: str) -> Callable[[Handler], Handler]:
    """Subscribe a handler to the declared `topics` (names without prefix, which must name this
    service as a consumer) in group `group_id` (prefixed as the topics are), dead-lettering what it keeps failing on."""
    names = [ctx.topic_to_consume(topic) for topic in topics]

    def register(handler: Handler) -> Handler:
        wrapped = dead_lettering(ctx)(handler)
        ctx.broker.subscriber(
            *names,
            group_id=ctx.settings.consumer_group(group_id),
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=raw_body,
        )(wrapped)
        return wrapped

    return register
