"""Reading a whole topic from its first offset, in batches, and knowing when it is caught up.

`TopicReader` reads every partition of a topic without a consumer group (nothing committed):
what a process materializes in memory and must hold whole — scoring's feature store, champions
and last-announced scores, each instance for any customer. "Caught up" is measured against each
partition's fetch high watermark as first observed after start-up (`watermarks`).

A high watermark below the reader's position means the broker lost the log (an in-memory broker
restarted empty, or the topic was recreated): the reader says so and reads that partition again
from its start — the features service republishes every customer's vector when it notices the
same — instead of waiting past the new log's end for records that never come.

`read_to_end` is the one-shot form: every record up to the high watermarks, then stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import Gauge

from retention_shared.config import Settings
from retention_shared.health import CheckResult
from retention_shared.kafka.clients import make_consumer
from retention_shared.kafka.watermarks import ends, fetched_positions, topic_partitions
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel

__all__ = ["BatchHandler", "TopicReader", "read_to_end"]

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[None]]
# Short fetch waits keep a reader at the end of the log fresh (Tansu answers a fetch only at its
# deadline when little is new).
FETCH_MAX_WAIT_MS = 100


@dataclass
class TopicReader:
    """Reads the declared topic `topic` (name without prefix, which must name `ctx`'s service as
    a consumer) into `handle`, batch by batch, for as long as it runs."""

    ctx: ServiceContext
    topic: str
    handle: BatchHandler
    max_batch: int = 5000
    lag: Gauge | None = None  # per partition
    # Called once, in the reading task, right after the first time the reader is caught up.
    on_caught_up: Callable[[], Awaitable[None]] | None = None
    # Read only these partitions (None: all): a sharded reader's share of the topic.
    only: frozenset[int] | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    # Per partition: the high watermark seen first after start-up (the catch-up target).
    targets: dict[int, int] = field(default_factory=dict)
    partitions: list[TopicPartition] = field(default_factory=list)
    name: str = field(init=False)  # with the prefix
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.name = self.ctx.topic_to_consume(self.topic)

    async def start(self) -> None:
        self._consumer = make_consumer(self.ctx.settings, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        await self._consumer.start()
        self.partitions = [
            tp
            for tp in await topic_partitions(self._consumer, self.name)
            if self.only is None or tp.partition in self.only
        ]
        self._consumer.assign(self.partitions)
        await self._consumer.seek_to_beginning(*self.partitions)
        self._task = asyncio.create_task(self._run(), name=f"read {self.name}")

    async def stop(self) -> None:
        await cancel([self._task])
        if self._consumer is not None:
            await self._consumer.stop()

    def status(self) -> CheckResult:
        if self.caught_up.is_set():
            return True, "caught up with the high watermarks seen at start-up"
        if not self.partitions:
            return False, "not reading yet"
        return False, (
            f"catching up ({len(self.targets)} of {len(self.partitions)} partitions measured)"
        )

    async def check(self) -> CheckResult:
        """Readiness: caught up once with the high watermarks seen at start-up."""
        return self.status()

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
                log.exception("reading %s failed; retrying", self.name)
                await asyncio.sleep(1.0)

    async def _observe(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        fetched = [tp for tp in self.partitions if consumer.highwater(tp) is not None]
        measured = ends(consumer, await fetched_positions(consumer, fetched))
        for end in measured:
            self.targets.setdefault(end.tp.partition, end.highwater)
            if end.lost:
                log.warning(
                    "the log of %s ends before this reader's position: the broker lost it; "
                    "reading the partition again from its start",
                    self.name,
                    extra={"partition": end.tp.partition, "detail": end.why_lost()},
                )
                await consumer.seek_to_beginning(end.tp)
            elif self.lag is not None:
                self.lag.labels(str(end.tp.partition)).set(end.lag)
        done = len(measured) == len(self.partitions) and all(
            not end.lost and end.position >= self.targets[end.tp.partition] for end in measured
        )
        if done and not self.caught_up.is_set():
            log.info("caught up", extra={"topic": self.name, "targets": self.targets})
            self.caught_up.set()
            if self.on_caught_up is not None:
                await self.on_caught_up()


async def read_to_end(
    settings: Settings,
    topic: str,
    handle: Callable[[list[ConsumerRecord]], None],
    timeout: float = 30.0,
) -> None:
    """Hand every record of `topic` (the name as on the broker) to `handle`, batch by batch,
    from the first offset up to each partition's fetch high watermark; then stop."""
    consumer = make_consumer(settings, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            tps = await topic_partitions(consumer, topic)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                records = [record for batch in batches.values() for record in batch]
                if records:
                    handle(records)
                fetched = [tp for tp in tps if consumer.highwater(tp) is not None]
                measured = ends(consumer, await fetched_positions(consumer, fetched))
                if len(measured) == len(tps) and not any(end.lag for end in measured):
                    return
    finally:
        await consumer.stop()
