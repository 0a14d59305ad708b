"""Reading a whole topic from its first offset, in batches, and knowing when it is caught up.

Every scoring instance reads all partitions of the topics it materializes (no consumer group):
each must answer for any customer. "Caught up" is measured against the fetch high watermark of
each partition as first observed after start-up, not `end_offsets` (the embedded broker
under-reports those after a multi-record batch; the fetch high watermark is right on Kafka too).

A high watermark below the reader's position means the broker lost the log (an in-memory broker
restarted empty, or the topic was recreated): the reader says so and reads that partition again
from its start — the features service republishes every customer's vector when it notices the
same — instead of waiting past the new log's end for records that never come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import Gauge

from retention_shared.config import Settings
from retention_shared.kafka import aiokafka_options, topic_partitions
from retention_shared.tasks import cancel

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[None]]


@dataclass
class TopicReader:
    settings: Settings
    topic: str
    handle: BatchHandler
    max_batch: int = 5000
    lag: Gauge | None = None
    # Called once, in the reading task, right after the first time the reader is caught up.
    on_caught_up: Callable[[], Awaitable[None]] | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    # Per partition: the high watermark seen first after start-up (the catch-up target).
    targets: dict[int, int] = field(default_factory=dict)
    partitions: list[TopicPartition] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Short fetch waits keep an instance at the end of the log fresh.
            fetch_max_wait_ms=100,
            **aiokafka_options(self.settings),
        )
        await self._consumer.start()
        self.partitions = await topic_partitions(self._consumer, self.topic)
        self._consumer.assign(self.partitions)
        await self._consumer.seek_to_beginning(*self.partitions)
        self._task = asyncio.create_task(self._run(), name=f"read {self.topic}")

    async def stop(self) -> None:
        await cancel([self._task])
        if self._consumer is not None:
            await self._consumer.stop()

    def status(self) -> tuple[bool, str]:
        if self.caught_up.is_set():
            return True, "caught up with the high watermarks seen at start-up"
        return False, (
            f"catching up ({len(self.targets)} of {len(self.partitions)} partitions measured)"
        )

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self.max_batch)
                records = [record for batch in batches.values() for record in batch]
                if records:
                    await self.handle(records)
                await self._observe()
            except asyncio.CancelledError:
                raise
            except Exception:  # never stop reading: log, back off, go on
                log.exception("reading %s failed; retrying", self.topic)
                await asyncio.sleep(1.0)

    async def _observe(self) -> None:
        assert self._consumer is not None
        done = True
        for tp in self.partitions:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                done = False
                continue
            self.targets.setdefault(tp.partition, highwater)
            position = await self._consumer.position(tp)
            if highwater < position:
                log.warning(
                    "the log of %s ends before this reader's position: the broker lost it; "
                    "reading the partition again from its start",
                    self.topic,
                    extra={"partition": tp.partition, "position": position, "end": highwater},
                )
                await self._consumer.seek_to_beginning(tp)
                continue
            if self.lag is not None:
                self.lag.labels(str(tp.partition)).set(max(0, highwater - position))
            if position < self.targets[tp.partition]:
                done = False
        if done and not self.caught_up.is_set():
            log.info("caught up", extra={"topic": self.topic, "targets": self.targets})
            self.caught_up.set()
            if self.on_caught_up is not None:
                await self.on_caught_up()
