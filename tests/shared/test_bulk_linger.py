"""`GroupConsumer`'s bulk lingering on the real broker: a backlog read in small fetches is applied
in few large batches, every offset once and in order; without it, one batch per small poll. Once
the backlog is drained the linger ends, not at its deadline."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from aiokafka import TopicPartition

from retention_shared.config import Settings
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.group_consumer import Batches, GroupConsumer
from retention_shared.service import ServiceContext

RECORDS = 3000


class _Recorder(GroupConsumer):
    publishes = False

    def __init__(self, ctx: ServiceContext, group: str) -> None:
        # ~1 KB per partition per fetch: a backlog comes in many small polls.
        super().__init__(
            ctx, ["transactions"], group, max_batch=100_000, max_partition_fetch_bytes=1024
        )
        self.batches: list[dict[TopicPartition, list[int]]] = []

    async def handle(self, batches: Batches) -> None:
        self.batches.append({tp: [r.offset for r in records] for tp, records in batches.items()})
        await self.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})


class _Lingering(_Recorder):
    bulk_records: ClassVar[int | None] = 10
    bulk_linger_seconds: ClassVar[float] = 3.0


class _Patient(_Recorder):
    """Would hold a bulk poll for half a minute if the linger ran to its deadline."""

    bulk_records: ClassVar[int | None] = 10
    bulk_linger_seconds: ClassVar[float] = 30.0


def _consume(settings: Settings, kind: type[_Recorder], group: str) -> _Recorder:
    """Runs a `kind` consumer until it applied every record (60 s at most), then stops it."""

    async def scenario() -> _Recorder:
        consumer = kind(ServiceContext.create("features", settings), group)
        await consumer.start()
        try:
            deadline = time.monotonic() + 60
            while sum(len(o) for b in consumer.batches for o in b.values()) < RECORDS:
                assert time.monotonic() < deadline, "not every record was applied"
                await asyncio.sleep(0.1)
        finally:
            await consumer.stop()
        return consumer

    return asyncio.run(scenario())


def _publish_backlog(settings: Settings) -> None:
    """`RECORDS` records in many small record batches, all in the log before anyone consumes."""

    async def publish() -> None:
        producer = BulkProducer(settings)
        await producer.start()
        try:
            records = [(f"t:c{n % 97}".encode(), b"x" * 200) for n in range(RECORDS)]
            for start in range(0, RECORDS, 12):
                topic = f"{settings.topic_prefix}transactions"
                await producer.send_all(topic, records[start : start + 12])
        finally:
            await producer.stop()

    asyncio.run(publish())


def test_a_backlog_is_applied_in_few_batches_every_offset_once(kafka_settings: Settings) -> None:
    _publish_backlog(kafka_settings)
    plain = _consume(kafka_settings, _Recorder, "plain")
    lingering = _consume(kafka_settings, _Lingering, "lingering")
    for consumer in (plain, lingering):
        applied: dict[TopicPartition, list[int]] = {}
        for batch in consumer.batches:
            for tp, offsets in batch.items():
                applied.setdefault(tp, []).extend(offsets)
        assert sum(map(len, applied.values())) == RECORDS
        for offsets in applied.values():  # each offset once, in order, from the first
            assert offsets == list(range(len(offsets)))
    assert len(plain.batches) >= 6  # small fetches, a batch per poll (9-15 seen)
    assert len(lingering.batches) <= 2  # the backlog within the linger (1 seen)


def test_a_drained_backlog_is_applied_without_waiting_out_the_linger(
    kafka_settings: Settings,
) -> None:
    _publish_backlog(kafka_settings)
    began = time.monotonic()
    patient = _consume(kafka_settings, _Patient, "patient")
    took = time.monotonic() - began
    # Run to its deadline, the linger would hold the backlog for 30 s: nothing arrives after it.
    assert took < _Patient.bulk_linger_seconds / 2
    assert sum(len(o) for b in patient.batches for o in b.values()) == RECORDS
    assert len(patient.batches) <= 2  # still gathered: the linger ran while records came
