"""The dead-letter path: what a consumer cannot process goes to `transactions.rejected`, with
reason codes, and the partition moves on.

Two kinds of record end there:

- one that cannot be read (`EventDecodeError`: `not_json`, `unsupported_schema_version`, a field
  out of bounds, ...) or that the service refuses (`future_order_datetime`, ingest's cleaning
  reasons): rejected at once, with its reasons;
- one the consumer keeps failing on: **poison**. Consumers apply records in batches; when a
  batch fails because of what is in it (a `RecordFault`, as opposed to the broker or the disk
  failing), `apply_batch` halves it until the record at fault stands alone — a few steps, where
  one record at a time would publish and commit once per record. A record that fails
  `poison_max_attempts` times alone is dead-lettered with reason `poison` (and the exception).

`TransientFailure` is the other answer: the broker or a store failed, not the record, so the
record is read again later and never dead-lettered. Each `RejectedRecord` names its source
topic, partition and offset, and carries the record (as JSON where it is JSON).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka.structs import ConsumerRecord

from retention_shared.events import EventDecodeError, RejectedRecord, RejectReason
from retention_shared.kafka.publisher import RecordSender, TopicPublisher
from retention_shared.service import ServiceContext

__all__ = [
    "DeadLetters",
    "RecordFault",
    "Reject",
    "TransientFailure",
    "apply_batch",
    "apply_isolating",
    "record_location",
    "rejected_payload",
]

log = logging.getLogger(__name__)
K = TypeVar("K")
R = TypeVar("R")
Reject = tuple[bytes | None, bytes]  # (key, RejectedRecord) as sent to transactions.rejected


class RecordFault(Exception):
    """Applying records failed because of the records themselves; `__cause__` says how."""


class TransientFailure(Exception):
    """The broker or a store failed, not the record: the record is retried, never dead-lettered."""


def record_location(record: ConsumerRecord) -> str:
    """`<topic>:<partition>:<offset>`: where the record can be found again."""
    return f"{record.topic}:{record.partition}:{record.offset}"


def _readable(payload: bytes | None) -> Any:
    if payload is None:
        return None
    try:
        value = json.loads(payload)
        # JSON may hold a lone surrogate ("\ud800") that no UTF-8 output can: keep the text then.
        json.dumps(value, ensure_ascii=False).encode()
        return value
    except (UnicodeError, ValueError):  # JSONDecodeError is a ValueError
        return payload.decode("utf-8", errors="replace")


def rejected_payload(
    record: ConsumerRecord, reasons: list[RejectReason], tenant_id: str | None = None
) -> bytes:
    """The `RejectedRecord` of a consumed record, with its reasons (pure: worker threads call it)."""
    return RejectedRecord(
        tenant_id=tenant_id,
        source=record.topic,
        source_id=record_location(record),
        record=_readable(record.value),
        reasons=reasons,
    ).to_bytes()


def poison_reason(error: BaseException, attempts: int) -> RejectReason:
    return RejectReason(
        code="poison", message=f"failed {attempts} times: {type(error).__name__}: {error}"[:2000]
    )


class DeadLetters:
    """One service's way to `transactions.rejected` (`producer`: a `BulkProducer` for `send`;
    `reject` goes through the service's FastStream broker)."""

    def __init__(self, ctx: ServiceContext, producer: RecordSender | None = None) -> None:
        self.topic = TopicPublisher(ctx, "transactions.rejected", producer)
        self.counts = ctx.counts
        self.attempts = ctx.settings.poison_max_attempts

    @staticmethod
    def undecodable(record: ConsumerRecord, error: EventDecodeError) -> Reject:
        """The reject of a record that is not a readable event (pure)."""
        return record.key, rejected_payload(record, [error.as_reason()])

    def poisoned(self, record: ConsumerRecord, error: BaseException) -> Reject:
        """The reject of a record the consumer failed on `attempts` times; logged and counted."""
        log.error(
            "poison record sent to the dead-letter topic",
            extra={"record": record_location(record), "error": repr(error)},
        )
        self.counts.poison(record.topic)
        return record.key, rejected_payload(record, [poison_reason(error, self.attempts)])

    async def send(self, rejects: Sequence[Reject]) -> None:
        """Send rejects in bulk, every one acknowledged (the consumer counts its consumed records
        once the batch is done)."""
        if rejects:
            await self.topic.send_all(rejects)

    async def reject(
        self, record: ConsumerRecord, reasons: list[RejectReason], tenant_id: str | None = None
    ) -> None:
        """Send one consumed record with its reasons, and count it as consumed and rejected."""
        rejected = RejectedRecord(
            tenant_id=tenant_id,
            source=record.topic,
            source_id=record_location(record),
            record=_readable(record.value),
            reasons=reasons,
        )
        await self.topic.publish(rejected, record.key)
        self.counts.consumed(record.topic, rejected=1)


async def apply_isolating(
    records: Sequence[R],
    apply: Callable[[Sequence[R]], Awaitable[bool]],
    dead_letter: Callable[[R, BaseException], Awaitable[bool]],
    attempts: int,
) -> bool:
    """Apply `records` in order with `apply`, halving what raises `RecordFault`; each record
    that still fails alone after `attempts` tries goes to `dead_letter`. Returns False as soon
    as `apply` or `dead_letter` does (a failure that is not the records': stop and retry later).
    """
    if len(records) > 1:
        try:
            return await apply(records)
        except RecordFault:
            middle = len(records) // 2
            return await apply_isolating(
                records[:middle], apply, dead_letter, attempts
            ) and await apply_isolating(records[middle:], apply, dead_letter, attempts)
    failure: BaseException | None = None
    for _ in range(attempts):
        try:
            return await apply(records)
        except RecordFault as fault:
            failure = fault.__cause__ or fault
    assert failure is not None
    return await dead_letter(records[0], failure)


async def _apply_one(
    apply: Callable[[dict[K, list[R]]], Awaitable[bool]], key: K, records: Sequence[R]
) -> bool:
    return await apply({key: list(records)})


async def apply_batch(
    work: dict[K, list[R]],
    apply: Callable[[dict[K, list[R]]], Awaitable[bool]],
    dead_letter: Callable[[K, R, BaseException], Awaitable[bool]],
    attempts: int,
) -> None:
    """Apply a batch of several partitions' records at once; if its records are at fault, each
    partition's records in halves (`apply_isolating`), stopping at a failure that is not."""
    try:
        await apply(work)
    except RecordFault as fault:
        log.warning(
            "a batch failed on its records; applying it in halves to find the one at fault",
            extra={"error": repr(fault.__cause__)},
        )
        for key, records in work.items():
            applied = await apply_isolating(
                records,
                functools.partial(_apply_one, apply, key),
                functools.partial(dead_letter, key),
                attempts,
            )
            if not applied:
                return  # the rest is read again from the last commit
