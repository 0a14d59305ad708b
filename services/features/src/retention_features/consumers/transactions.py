"""`transactions` → per-partition state → `CustomerFeatures` on `customer-features`.

A raw aiokafka consumer (not a FastStream subscriber) because the service owns its offsets: they
live in each partition's SQLite file, and on assignment the consumer seeks to them — or to the
partition's first offset, rebuilding a partition that has no state file. Per poll:

1. decode the records (`decoding`; undecodable ones go to `transactions.rejected`),
2. add the orders to each partition's store inside an open transaction; the store says which
   were new (duplicates are ignored),
3. add the new orders to the touched customers' running totals (`running`, loaded from the
   store on first touch) and take each touched customer's vector once,
4. publish the vectors, wait for the broker's acknowledgements, then commit each partition's
   orders + next offset in one transaction.

Steps 1-3 run in a worker thread so fetching goes on meanwhile. A crash before 4 replays the
batch: the store dedupes the orders, the totals are rebuilt from the store, and the vectors are
the same, because each customer's `as_of` is the partition's tenant clock at that customer's last
event — a function of the log alone, not of where batch boundaries fell. A batch that fails is
rolled back, store and totals alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from retention_features import metrics
from retention_features.decoding import decode_orders
from retention_features.running import CustomerKey, RunningCustomers
from retention_features.store import PartitionStore, to_microseconds
from retention_features.vectors import batch_time, feature_payloads, running_payload
from retention_shared.config import ClockMode
from retention_shared.consuming import rejected_payload
from retention_shared.events import EventDecodeError
from retention_shared.kafka import BulkProducer, aiokafka_options
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel

log = logging.getLogger(__name__)

GROUP_ID = "retention-features"
CUSTOMER_COUNT_EVERY_SECONDS = 15.0
PROGRESS_COMMIT_SECONDS = 1.0
# Fetch sizes: a replay gets several thousand records per partition per poll (fewer, larger
# batches: one vector per touched customer per batch, one acknowledgement wait per batch; 16 MB
# replays online_retail_II ~12% faster than 4 MB); a consumer at the end of the log waits at
# most this long for new records (on Tansu, the delay of a fetch that has little to return).
MAX_PARTITION_FETCH_BYTES = 16 * 1024 * 1024
FETCH_MAX_WAIT_MS = 25


@dataclass
class Rebuild:
    started: float


@dataclass
class PreparedBatch:
    """One poll's work, ready to publish: the partitions' transactions are open until commit."""

    records: dict[TopicPartition, list[ConsumerRecord]]
    clocks: dict[int, dict[str, int]]
    features: list[tuple[bytes, bytes]] = field(default_factory=list)
    rejects: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    orders: int = 0


@dataclass
class TransactionsConsumer:
    ctx: ServiceContext
    state_dir: Path
    max_batch: int = 10000
    stores: dict[int, PartitionStore] = field(default_factory=dict)
    # Each owned partition's customers' running totals (the stores hold the truth).
    customers: dict[int, RunningCustomers] = field(default_factory=dict)
    # The offset each owned partition must continue from: its stored next offset, or its first
    # offset when it is being rebuilt. Records before it were applied; a gap after it is re-read.
    next_offsets: dict[int, int] = field(default_factory=dict)
    rebuilding: dict[int, Rebuild] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _producer: BulkProducer | None = None
    _task: asyncio.Task[None] | None = None
    _progress_task: asyncio.Task[None] | None = None
    _progress: dict[TopicPartition, int] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _customers_counted_at: float = 0.0

    async def start(self) -> None:
        self._producer = BulkProducer(self.ctx.settings)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            group_id=GROUP_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            **aiokafka_options(self.ctx.settings),
        )
        self._consumer.subscribe([self.ctx.topics.transactions], listener=_Rebalance(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        self._progress_task = asyncio.create_task(self._commit_progress())

    async def stop(self) -> None:
        await cancel([self._task, self._progress_task])
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        async with self._lock:
            self._close(list(self.stores))

    def store_path(self, partition: int) -> Path:
        return self.state_dir / f"{self.ctx.topics.transactions}-{partition}.sqlite"

    async def _commit_progress(self) -> None:
        """Commit the applied offsets to Kafka once a second, off the batch path.

        Informational only (the stores hold the offsets the service resumes from): it lets Kafka
        tools see the group's progress. Waiting for it per batch cost a round trip of freshness.
        """
        assert self._consumer is not None
        while True:
            await asyncio.sleep(PROGRESS_COMMIT_SECONDS)
            owned = {tp: o for tp, o in self._progress.items() if tp.partition in self.stores}
            self._progress.clear()
            if owned:
                with contextlib.suppress(Exception):  # e.g. a rebalance in between
                    await self._consumer.commit(owned)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=self.max_batch)
            async with self._lock:
                work = {}
                for tp, records in batches.items():
                    if tp.partition in self.stores and (unapplied := self._unapplied(tp, records)):
                        work[tp] = unapplied
                if work:
                    await self._apply(work)
                self._observe()

    def _unapplied(self, tp: TopicPartition, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """The records not applied yet; none (and a re-read) if there is a gap before them.

        A batch fetched before a rebalance can arrive after the partition was re-seeked: each
        offset is applied exactly once (the clocks would move otherwise), and none is skipped.
        """
        assert self._consumer is not None
        expected = self.next_offsets[tp.partition]
        records = [record for record in records if record.offset >= expected]
        if records and records[0].offset > expected:
            self._consumer.seek(tp, expected)
            return []
        return records

    async def _apply(self, work: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self._consumer is not None and self._producer is not None
        try:
            batch = await asyncio.to_thread(self._prepare, work)
            await asyncio.gather(
                self._producer.send_all(self.ctx.topics.customer_features, batch.features),
                self._producer.send_all(self.ctx.topics.transactions_rejected, batch.rejects),
            )
            await asyncio.to_thread(self._commit, batch)
        except Exception:
            log.exception("batch failed; rewinding to the stored offsets")
            for tp in work:
                self.stores[tp.partition].rollback()
                self.customers[tp.partition].forget()
                self._consumer.seek(tp, self.next_offsets[tp.partition])
            await asyncio.sleep(1.0)
            return
        published_at = time.time()
        next_offsets = {}
        for tp, records in work.items():
            self.next_offsets[tp.partition] = next_offsets[tp] = records[-1].offset + 1
            for record in records:
                metrics.FRESHNESS.observe(max(0.0, published_at - record.timestamp / 1000))
        name, topics = self.ctx.name, self.ctx.topics
        MESSAGES.labels(name, topics.transactions, "consumed", "ok").inc(batch.orders)
        MESSAGES.labels(name, topics.customer_features, "published", "ok").inc(len(batch.features))
        self._progress.update(next_offsets)

    def _prepare(self, work: dict[TopicPartition, list[ConsumerRecord]]) -> PreparedBatch:
        """Decode, store and compute (worker thread; the stores' transactions stay open)."""
        batch = PreparedBatch(records=work, clocks={})
        computed_at = batch_time()
        wall = self.ctx.settings.clock is ClockMode.WALL
        now = to_microseconds(datetime.now(UTC))
        unserved_history, unserved_as_of, unserved_sources = [], {}, {}
        for tp, records in work.items():
            store, customers = self.stores[tp.partition], self.customers[tp.partition]
            orders, offsets = [], []
            decoded = decode_orders([record.value for record in records])
            for record, order in zip(records, decoded, strict=True):
                if isinstance(order, EventDecodeError):
                    batch.rejects.append((record.key, _rejected(record, order)))
                else:
                    orders.append(order)
                    offsets.append(record.offset)
            clocks = store.tenant_clocks()
            # The tenant's clock in this partition at each touched customer's last event.
            as_of: dict[CustomerKey, int] = {}
            sources: dict[CustomerKey, tuple[int, int]] = {}
            for order, offset in zip(orders, offsets, strict=True):
                moment, clock = order.order.occurred_at_us, clocks.get(order.tenant_id)
                if clock is None or moment > clock:
                    clocks[order.tenant_id] = clock = moment
                key = (order.tenant_id, order.customer_id)
                as_of[key] = clock
                sources[key] = (tp.partition, offset)
            store.begin()
            new = store.insert_rows(
                [o.row(offset) for o, offset in zip(orders, offsets, strict=True)]
            )
            customers.apply(order for order, is_new in zip(orders, new, strict=True) if is_new)
            batch.clocks[tp.partition] = clocks
            batch.orders += len(orders)
            if wall:  # live data: recency against real time
                as_of = dict.fromkeys(as_of, now)
            served, unserved = customers.vectors(as_of)
            batch.features += [
                running_payload(*key, vector, sources[key], computed_at)
                for key, vector in served.items()
            ]
            if unserved:
                unserved_history.append(store.history(unserved))
                unserved_as_of.update((key, as_of[key]) for key in unserved)
                unserved_sources.update((key, sources[key]) for key in unserved)
        if unserved_as_of:
            batch.features += feature_payloads(
                pl.concat(unserved_history), unserved_as_of, unserved_sources
            )
        return batch

    def _commit(self, batch: PreparedBatch) -> None:
        for tp, records in batch.records.items():
            store = self.stores[tp.partition]
            store.save_tenant_clocks(batch.clocks[tp.partition])
            store.commit(records[-1].offset + 1)

    def _observe(self) -> None:
        assert self._consumer is not None
        for partition in self.stores:
            tp = TopicPartition(self.ctx.topics.transactions, partition)
            # The fetch high watermark, not end_offsets: Tansu under-reports the latter.
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = self.next_offsets[partition]
            metrics.CONSUMER_LAG.labels(str(partition)).set(max(0, highwater - position))
            rebuild = self.rebuilding.get(partition)
            if rebuild is not None and position >= highwater:
                metrics.REBUILD_DURATION.observe(time.monotonic() - rebuild.started)
                del self.rebuilding[partition]
        if time.monotonic() - self._customers_counted_at > CUSTOMER_COUNT_EVERY_SECONDS:
            metrics.CUSTOMERS.set(sum(store.customers() for store in self.stores.values()))
            self._customers_counted_at = time.monotonic()

    def _close(self, partitions: list[int]) -> None:
        for partition in partitions:
            store = self.stores.pop(partition, None)
            if store is not None:
                store.close()
            self.customers.pop(partition, None)
            self.rebuilding.pop(partition, None)
            self.next_offsets.pop(partition, None)
            with contextlib.suppress(KeyError):  # no lag was observed for it yet
                metrics.CONSUMER_LAG.remove(str(partition))


def _rejected(record: ConsumerRecord, error: EventDecodeError) -> bytes:
    metrics.REJECTED.labels(error.code).inc()
    return rejected_payload(record, error)


class _Rebalance(ConsumerRebalanceListener):
    """Opens a partition's store when it is assigned and seeks to where its state ends."""

    def __init__(self, owner: TransactionsConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Waits for the batch in flight: a revoked partition is never half-written.
        async with self.owner._lock:
            self.owner._close([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        owner = self.owner
        consumer = owner._consumer
        assert consumer is not None
        async with owner._lock:
            for tp in assigned:
                store = PartitionStore(owner.store_path(tp.partition))
                owner.stores[tp.partition] = store
                next_offset = store.next_offset()
                owner.customers[tp.partition] = RunningCustomers(store, empty=next_offset is None)
                if next_offset is None:
                    log.info(
                        "rebuilding partition from the beginning", extra={"partition": tp.partition}
                    )
                    metrics.REBUILDS.inc()
                    owner.rebuilding[tp.partition] = Rebuild(started=time.monotonic())
                    # An explicit offset: a lazy seek_to_beginning can lose to the group's
                    # committed offset (another instance's progress, not this state's).
                    next_offset = (await consumer.beginning_offsets([tp]))[tp]
                owner.next_offsets[tp.partition] = next_offset
                consumer.seek(tp, next_offset)
