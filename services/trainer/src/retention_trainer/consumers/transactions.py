"""`transactions` → the transaction lake, committing offsets only once the data is durable.

A raw aiokafka group consumer (group `retention-trainer.lake`, from the earliest offset), not a
FastStream subscriber, because it works in batches and decides when offsets are committed. Per
poll it decodes the whole batch, sends undecodable records to `transactions.rejected` with their
reason, appends the events to the lake in a worker thread and, once `append` returned (and the
rejects were acknowledged), commits the next offsets. A crash before the commit redelivers the
batch; the lake reads each event id once, so nothing counts twice.

Like the features service, it rejects an order dated more than `max_future_skew_hours` after its
record arrived (`future_order_datetime`), halves a batch whose values it cannot turn into lake
parts down to the record at fault and sends one that fails `poison_max_attempts` times to
`transactions.rejected` (reason `poison`); a storage or broker failure is retried with backoff
while `/readyz` says so.

It also keeps, per partition, the offset up to which the lake is complete. A training run waits
until that has reached the high watermarks seen when its trigger arrived (`wait_caught_up`):
a `RetrainRequested` from an upload can arrive before the upload's orders are in the lake.
Tenants share partitions (records are keyed `tenant:customer`), so "the lake holds a tenant's
orders up to now" means "every partition is applied up to its high watermark of now".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from retention_shared.consumer_health import ConsumerHealth
from retention_shared.consuming import POISON_RECORDS, poison_payload, rejected_payload
from retention_shared.erasure import ErasureList, to_microseconds
from retention_shared.event_columns import order_event_frame
from retention_shared.event_time import US_PER_SECOND, latest_event_time_us
from retention_shared.events import EventDecodeError, OrderEvent, decode_events
from retention_shared.kafka import BulkProducer, aiokafka_options, topic_partitions
from retention_shared.metrics import MESSAGES
from retention_shared.poison import RecordFault, apply_batch
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel
from retention_trainer import metrics
from retention_trainer.lake import TransactionLake

log = logging.getLogger(__name__)

GROUP_ID = "retention-trainer.lake"
MAX_BATCH = 20_000
# Small part files are merged this often per tenant that received orders meanwhile.
COMPACT_EVERY_SECONDS = 60.0
LAKE_BYTES_EVERY_SECONDS = 15.0
RETRY_SECONDS, MAX_RETRY_SECONDS = 1.0, 30.0


class LakeNotCaughtUp(TimeoutError):
    """The lake did not reach the wanted offsets in time."""


@dataclass
class LakeConsumer:
    ctx: ServiceContext
    lake: TransactionLake
    max_batch: int = MAX_BATCH
    # Per partition: the next offset not yet in the lake (everything before it is durable).
    applied: dict[int, int] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _producer: BulkProducer | None = None
    _task: asyncio.Task[None] | None = None
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    # Compaction deletes part files a reader may be about to open: readers hold this lock.
    _maintenance: asyncio.Lock = field(default_factory=asyncio.Lock)
    _uncompacted: set[str] = field(default_factory=set)
    _unsized: set[str] = field(default_factory=set)
    _compacted_at: float = field(default_factory=time.monotonic)
    _sized_at: float = 0.0
    health: ConsumerHealth = field(default_factory=ConsumerHealth)
    _retry_seconds: float = RETRY_SECONDS
    # Customers erased from the lake (`consumers/customer_erasures.py`): their orders dated up
    # to the erasure are not stored again. An erasure holds `writing` while it rewrites parts.
    erasures: ErasureList | None = None
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> None:
        self._producer = BulkProducer(self.ctx.settings)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            group_id=GROUP_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Short fetch waits: Tansu answers a fetch only at its deadline when little is new.
            fetch_max_wait_ms=100,
            **aiokafka_options(self.ctx.settings),
        )
        self._consumer.subscribe([self.ctx.topics.transactions], listener=_Rebalance(self))
        await self._consumer.start()
        await asyncio.to_thread(self._observe_all_tenants)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel([self._task])
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    @property
    def assigned(self) -> list[int]:
        return sorted(self.applied)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[TransactionLake]:
        """The lake, with compaction held off while the caller reads it."""
        async with self._maintenance:
            yield self.lake

    async def wait_caught_up(self, targets: dict[int, int], timeout: float) -> None:
        """Until every partition's lake offset reaches its target (or LakeNotCaughtUp)."""

        def behind() -> dict[int, int]:
            return {p: t for p, t in targets.items() if self.applied.get(p, 0) < t}

        async with self._progress:
            try:
                async with asyncio.timeout(timeout):
                    await self._progress.wait_for(lambda: not behind())
            except TimeoutError:
                lagging = {p: f"{self.applied.get(p)}/{t}" for p, t in behind().items()}
                raise LakeNotCaughtUp(
                    f"the lake did not catch up with transactions within {timeout:.0f}s "
                    f"(partition: applied/wanted offset {lagging})"
                ) from None

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self.max_batch)
                batches = {tp: records for tp, records in batches.items() if records}
                if batches:
                    async with self.writing:
                        await self._apply(batches)
                await self._maintain()
            except asyncio.CancelledError:
                raise
            except Exception:  # never a dead task (a stall with lag shows in readiness)
                log.exception("consuming transactions failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)

    async def _apply(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        await apply_batch(
            batches, self._store, self._dead_letter, self.ctx.settings.poison_max_attempts
        )

    async def _store(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Append a batch to the lake and commit it; `RecordFault` if its values are at fault,
        False (rewound, after a pause) if the storage or the broker failed."""
        assert self._producer is not None
        records = [record for batch in batches.values() for record in batch]
        try:
            events, rejects = _decode(records, self.ctx.settings.max_future_skew_hours)
            events = [event for event in events if not self._erased(event)]
            parts = await asyncio.to_thread(self.lake.parts, order_event_frame(events))
        except Exception as error:
            raise RecordFault from error
        try:
            await self._producer.send_all(self.ctx.topics.transactions_rejected, rejects)
            await asyncio.to_thread(self.lake.write, parts)
        except Exception as error:
            await self._retry_later(batches, error)
            return False
        await self._committed(batches, len(events), len(rejects))
        self._uncompacted |= {e.tenant_id for e in events}
        self._unsized |= {e.tenant_id for e in events}
        return True

    def _erased(self, event: OrderEvent) -> bool:
        """An order of an erased customer dated up to the erasure (sent again, or re-read)."""
        erasures = self.erasures
        return erasures is not None and erasures.covers(
            event.tenant_id, event.customer_id, to_microseconds(event.occurred_at)
        )

    async def _dead_letter(
        self, tp: TopicPartition, record: ConsumerRecord, error: BaseException
    ) -> bool:
        assert self._producer is not None
        log.error(
            "poison record sent to the dead-letter topic",
            extra={"partition": tp.partition, "offset": record.offset, "error": repr(error)},
        )
        POISON_RECORDS.labels(self.ctx.name, tp.topic).inc()
        payload = poison_payload(record, error, self.ctx.settings.poison_max_attempts)
        try:
            await self._producer.send_all(
                self.ctx.topics.transactions_rejected, [(record.key, payload)]
            )
        except Exception as failure:
            await self._retry_later({tp: [record]}, failure)
            return False
        await self._committed({tp: [record]}, 0, 1)
        return True

    async def _retry_later(
        self, batches: dict[TopicPartition, list[ConsumerRecord]], error: BaseException
    ) -> None:
        assert self._consumer is not None
        log.warning(
            "could not store a batch in the lake; retrying from the last commit",
            extra={"error": f"{type(error).__name__}: {error}", "retry_in": self._retry_seconds},
        )
        self.health.failed(error)
        for tp in batches:
            if tp.partition in self.applied:
                self._consumer.seek(tp, self.applied[tp.partition])
        await asyncio.sleep(self._retry_seconds)
        self._retry_seconds = min(MAX_RETRY_SECONDS, self._retry_seconds * 2)

    async def _committed(
        self, batches: dict[TopicPartition, list[ConsumerRecord]], events: int, rejects: int
    ) -> None:
        """Commit the batch's offsets (the data is durable) and count it."""
        assert self._consumer is not None
        self.health.progressed()
        self._retry_seconds = RETRY_SECONDS
        next_offsets = {tp: batch[-1].offset + 1 for tp, batch in batches.items()}
        try:
            await self._consumer.commit(next_offsets)
        except Exception as error:  # e.g. a rebalance: the batch is redelivered, and read once
            log.warning(
                "offset commit failed; the batch may be redelivered", extra={"error": str(error)}
            )
        async with self._progress:
            for tp, offset in next_offsets.items():
                self.applied[tp.partition] = max(self.applied.get(tp.partition, 0), offset)
            self._progress.notify_all()
        name, topics = self.ctx.name, self.ctx.topics
        MESSAGES.labels(name, topics.transactions, "consumed", "ok").inc(events)
        if rejects:
            MESSAGES.labels(name, topics.transactions, "consumed", "rejected").inc(rejects)
            MESSAGES.labels(name, topics.transactions_rejected, "published", "ok").inc(rejects)

    async def _maintain(self) -> None:
        """Compact the tenants that received orders (now and then) and refresh lake sizes."""
        now = time.monotonic()
        if self._uncompacted and now - self._compacted_at >= COMPACT_EVERY_SECONDS:
            tenants, self._uncompacted = sorted(self._uncompacted), set()
            async with self._maintenance:
                for tenant in tenants:
                    try:
                        await asyncio.to_thread(self.lake.compact, tenant)
                    except Exception:  # a failed compaction leaves the parts as they were
                        log.exception("lake compaction failed", extra={"tenant_id": tenant})
            self._compacted_at = now
            self._unsized.update(tenants)
        if self._unsized and now - self._sized_at >= LAKE_BYTES_EVERY_SECONDS:
            tenants, self._unsized = sorted(self._unsized), set()
            for tenant in tenants:
                try:
                    size = await asyncio.to_thread(self.lake.size_bytes, tenant)
                except Exception:
                    log.exception("could not measure the lake", extra={"tenant_id": tenant})
                    continue
                metrics.LAKE_BYTES.labels(tenant).set(size)
            self._sized_at = now

    def _observe_all_tenants(self) -> None:
        for tenant in self.lake.tenants():
            metrics.LAKE_BYTES.labels(tenant).set(self.lake.size_bytes(tenant))


def _decode(
    records: list[ConsumerRecord], skew_hours: float
) -> tuple[list[OrderEvent], list[tuple[bytes | None, bytes]]]:
    events: list[OrderEvent] = []
    rejects: list[tuple[bytes | None, bytes]] = []
    decoded = decode_events(OrderEvent, [record.value for record in records])
    for record, event in zip(records, decoded, strict=True):
        latest = latest_event_time_us(record.timestamp, skew_hours)
        if not isinstance(event, EventDecodeError) and (
            event.occurred_at.timestamp() * US_PER_SECOND > latest
        ):
            event = EventDecodeError(
                "future_order_datetime",
                f"occurred_at is more than {skew_hours:g} hours after the record arrived",
                field="occurred_at",
            )
        if isinstance(event, EventDecodeError):
            rejects.append((record.key, rejected_payload(record, event)))
        else:
            events.append(event)
    return events, rejects


async def high_watermarks(ctx: ServiceContext, timeout: float = 15.0) -> dict[int, int]:
    """Each `transactions` partition's high watermark now, from a fetch response.

    Not `end_offsets`: the embedded broker under-reports it after a multi-record batch (by up
    to the batch's length), while the high watermark in a fetch response is right (on real
    Kafka too). So: a short-lived consumer fetches at the reported end (minus one, inside the
    last batch) and reads the high watermark the fetch answers with.
    """
    topic = ctx.topics.transactions
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        **aiokafka_options(ctx.settings),
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            tps = await topic_partitions(consumer, topic)
            consumer.assign(tps)
            for tp, end in (await consumer.end_offsets(tps)).items():
                consumer.seek(tp, max(0, end - 1))
            while any(consumer.highwater(tp) is None for tp in tps):
                await consumer.getmany(timeout_ms=200)
            return {tp.partition: int(consumer.highwater(tp)) for tp in tps}
    finally:
        await consumer.stop()


class _Rebalance(ConsumerRebalanceListener):
    """Tracks which partitions this instance owns and where their lake data ends."""

    def __init__(self, owner: LakeConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.owner.applied.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self.owner._consumer
        assert consumer is not None
        beginnings = await consumer.beginning_offsets(assigned) if assigned else {}
        async with self.owner._progress:
            for tp in assigned:
                committed = await consumer.committed(tp)
                self.owner.applied[tp.partition] = (
                    committed if committed is not None else beginnings[tp]
                )
            self.owner._progress.notify_all()
