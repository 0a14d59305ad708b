"""Where a partition's log ends, how far behind a reader is, and whether the broker lost the log.

The one module that touches aiokafka internals (a test holds every other module to it).

Ends are measured from the **fetch high watermark** (`consumer.highwater(tp)`, known once a
fetch of the partition answered), never from ListOffsets (`end_offsets`, `seek_to_end`): the
embedded broker (Tansu) under-reports the latter after a multi-record batch — it answers the last
batch's base offset + 1 — while the high watermark in fetch responses is right, on real Kafka
too. A high watermark *below* a reader's position means the log it read is gone (an in-memory
broker restarted empty, or the topic was deleted and created again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from retention_shared.config import Settings
from retention_shared.kafka.clients import make_consumer

__all__ = [
    "PartitionEnd",
    "drained",
    "ends",
    "fetched_positions",
    "high_watermarks",
    "topic_partitions",
]

METADATA_ATTEMPTS, METADATA_PAUSE = 50, 0.1


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, sorted. A fresh client may not have the topic's metadata yet:
    it is asked for again, five seconds at most."""
    for _ in range(METADATA_ATTEMPTS):
        if found := consumer.partitions_for_topic(topic):
            return [TopicPartition(topic, p) for p in sorted(found)]
        # aiokafka has no public way to ask for metadata now.
        await consumer._client.force_metadata_update()
        await asyncio.sleep(METADATA_PAUSE)
    raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")


@dataclass(frozen=True)
class PartitionEnd:
    """A partition's fetch high watermark against a reader's position (its next offset)."""

    tp: TopicPartition
    position: int
    highwater: int

    @property
    def lag(self) -> int:
        return max(0, self.highwater - self.position)

    @property
    def lost(self) -> bool:
        """The log ends before the position: the broker lost the log the reader read."""
        return self.highwater < self.position

    def why_lost(self) -> str:
        return f"the log ends at {self.highwater}, before offset {self.position}"


def ends(consumer: AIOKafkaConsumer, positions: Mapping[TopicPartition, int]) -> list[PartitionEnd]:
    """Each partition's end against `positions`; partitions not fetched yet are left out."""
    found = []
    for tp, position in positions.items():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            found.append(PartitionEnd(tp, position, highwater))
    return found


def drained(consumer: AIOKafkaConsumer, next_offsets: Mapping[TopicPartition, int]) -> bool:
    """Whether every partition's log ends at its next offset, as of the last fetch response
    (a partition not fetched yet is not drained)."""
    found = ends(consumer, next_offsets)
    return len(found) == len(next_offsets) and all(end.lag == 0 for end in found)


async def fetched_positions(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The consumer's fetch position in each of `tps` (where its next fetch starts)."""
    return {tp: await consumer.position(tp) for tp in tps}


async def high_watermarks(
    settings: Settings, topics: Sequence[str], timeout: float = 15.0
) -> dict[TopicPartition, int]:
    """Every partition's high watermark now, from a fetch response.

    A short-lived consumer asks ListOffsets for the end (which may under-report), fetches from
    just before it (inside the last batch) and reads the high watermark the fetch answers with.
    """
    consumer = make_consumer(settings, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            tps = [tp for topic in topics for tp in await topic_partitions(consumer, topic)]
            consumer.assign(tps)
            for tp, end in (await consumer.end_offsets(tps)).items():
                consumer.seek(tp, max(0, end - 1))
            while any(consumer.highwater(tp) is None for tp in tps):
                await consumer.getmany(timeout_ms=200)
            return {tp: int(consumer.highwater(tp)) for tp in tps}
    finally:
        await consumer.stop()
