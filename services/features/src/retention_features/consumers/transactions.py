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

An order dated more than `max_future_skew_hours` after its record's broker timestamp is rejected
(`future_order_datetime`): no event moves a tenant's clock past wall time + skew. A batch whose
computing fails is applied again record by record; a record that fails `poison_max_attempts`
times alone is poison (halving the failed batch finds it in a few steps): it goes to
`transactions.rejected` (reason `poison`, with the exception),
its offset is committed, and the partition — and every other — moves on. A batch that fails to
publish or commit (the broker, the disk) is retried from the stored offsets with backoff, and
`/readyz` says so meanwhile.

A broker that lost its log (an in-memory broker restarted empty) is noticed on assignment —
the offset of the last stored order no longer holds it (`log_check`) — and whenever a
partition's high watermark falls below the stored offset. The state is kept (it is the only copy
of those orders now), every customer's vector is republished (the compacted topic was lost too),
and consuming restarts at the new log's start; logs, `retention_features_log_resets_total` and
`/readyz` say so.

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
from retention_features.decoding import DecodedOrder, decode_orders
from retention_features.erasure import sweep, tombstones
from retention_features.log_check import lost_logs
from retention_features.running import CustomerKey, RunningCustomers
from retention_features.store import PartitionStore, to_microseconds
from retention_features.vectors import batch_time, feature_payloads, running_payload
from retention_shared.config import ClockMode
from retention_shared.consumer_health import ConsumerHealth
from retention_shared.consuming import POISON_RECORDS, poison_payload, rejected_payload
from retention_shared.erasure import ErasureList
from retention_shared.event_time import latest_event_time_us
from retention_shared.events import EventDecodeError
from retention_shared.kafka import BulkProducer, aiokafka_options
from retention_shared.metrics import MESSAGES
from retention_shared.poison import RecordFault, apply_batch
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
# After a batch fails to publish or commit, wait this long, doubling up to the maximum.
RETRY_SECONDS, MAX_RETRY_SECONDS = 1.0, 30.0


@dataclass
class Rebuild:
    started: float


@dataclass
class PreparedBatch:
    """One poll's work, ready to publish: the partitions' transactions are open until commit."""

    records: dict[TopicPartition, list[ConsumerRecord]]
    clocks: dict[int, dict[str, int]]
    features: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # None: tombstone
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
    health: ConsumerHealth = field(default_factory=ConsumerHealth)
    # Customers erased from this instance (`retention_features.erasure`); None: no erasures.
    erasures: ErasureList | None = None
    _retry_seconds: float = RETRY_SECONDS

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
        while True:
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. the broker gone mid-rebuild: never a dead task (a stall
                # with lag shows in readiness through `health`)
                log.exception("consuming transactions failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)

    async def _poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=500, max_records=self.max_batch)
        async with self._lock:
            work = {}
            for tp, records in batches.items():
                if tp.partition in self.stores and (unapplied := self._unapplied(tp, records)):
                    work[tp] = unapplied
            if work:
                await self._apply(work)
            await self._observe()

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
        await apply_batch(
            work, self._apply_work, self._dead_letter, self.ctx.settings.poison_max_attempts
        )

    async def _apply_work(self, work: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Compute, publish and commit; `RecordFault` if computing failed (rolled back)."""
        try:
            batch = await asyncio.to_thread(self._prepare, work)
        except Exception as error:
            self._rollback(work)
            raise RecordFault from error
        return await self._publish_and_commit(batch)

    async def _dead_letter(
        self, tp: TopicPartition, record: ConsumerRecord, error: BaseException
    ) -> bool:
        """Send `record` to `transactions.rejected` and commit past it, applying nothing of it."""
        attempts = self.ctx.settings.poison_max_attempts
        log.error(
            "poison record sent to the dead-letter topic",
            extra={"partition": tp.partition, "offset": record.offset, "error": repr(error)},
        )
        POISON_RECORDS.labels(self.ctx.name, tp.topic).inc()
        store = self.stores[tp.partition]
        await asyncio.to_thread(store.begin)
        return await self._publish_and_commit(
            PreparedBatch(
                records={tp: [record]},
                clocks={tp.partition: store.tenant_clocks()},
                rejects=[(record.key, poison_payload(record, error, attempts))],
            )
        )

    def _rollback(self, work: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp in work:
            self.stores[tp.partition].rollback()
            self.customers[tp.partition].forget()

    async def _publish_and_commit(self, batch: PreparedBatch) -> bool:
        """Publish a prepared batch, then commit it; False (rewound, after a pause) if either
        failed, which is the broker's or the disk's doing, not a record's."""
        assert self._consumer is not None and self._producer is not None
        work = batch.records
        try:
            await asyncio.gather(
                self._producer.send_all(self.ctx.topics.customer_features, batch.features),
                self._producer.send_all(self.ctx.topics.transactions_rejected, batch.rejects),
            )
            await asyncio.to_thread(self._commit, batch)
        except Exception as error:
            log.warning(
                "could not publish or commit a batch; retrying from the stored offsets",
                extra={
                    "error": f"{type(error).__name__}: {error}",
                    "retry_in": self._retry_seconds,
                },
            )
            self.health.failed(error)
            self._rollback(work)
            for tp in work:
                self._consumer.seek(tp, self.next_offsets[tp.partition])
            await asyncio.sleep(self._retry_seconds)
            self._retry_seconds = min(MAX_RETRY_SECONDS, self._retry_seconds * 2)
            return False
        self.health.progressed()
        self._retry_seconds = RETRY_SECONDS
        published_at = time.time()
        next_offsets = {}
        for tp, records in work.items():
            self.next_offsets[tp.partition] = next_offsets[tp] = records[-1].offset + 1
            for record in records:
                metrics.FRESHNESS.observe(max(0.0, published_at - record.timestamp / 1000))
        name, topics = self.ctx.name, self.ctx.topics
        MESSAGES.labels(name, topics.transactions, "consumed", "ok").inc(batch.orders)
        MESSAGES.labels(name, topics.customer_features, "published", "ok").inc(len(batch.features))
        if batch.rejects:
            MESSAGES.labels(name, topics.transactions, "consumed", "rejected").inc(
                len(batch.rejects)
            )
        self._progress.update(next_offsets)
        return True

    def _prepare(self, work: dict[TopicPartition, list[ConsumerRecord]]) -> PreparedBatch:
        """Decode, store and compute (worker thread; the stores' transactions stay open)."""
        batch = PreparedBatch(records=work, clocks={})
        computed_at = batch_time()
        wall = self.ctx.settings.clock is ClockMode.WALL
        now = to_microseconds(datetime.now(UTC))
        skew_hours = self.ctx.settings.max_future_skew_hours
        unserved_history, unserved_as_of, unserved_sources = [], {}, {}
        for tp, records in work.items():
            store, customers = self.stores[tp.partition], self.customers[tp.partition]
            orders, offsets = [], []
            decoded = decode_orders([record.value for record in records])
            for record, order in zip(records, decoded, strict=True):
                if not isinstance(order, EventDecodeError):
                    latest = latest_event_time_us(record.timestamp, skew_hours)
                    if order.order.occurred_at_us > latest:
                        order = EventDecodeError(
                            "future_order_datetime",
                            f"occurred_at is more than {skew_hours:g} hours after the record "
                            "arrived",
                            field="occurred_at",
                        )
                if isinstance(order, EventDecodeError):
                    batch.rejects.append((record.key, _rejected(record, order)))
                elif self._erased(order):
                    continue  # history of an erased customer, sent again or replayed
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
            plain = [(o, offset) for o, offset in zip(orders, offsets, strict=True) if not o.amends]
            new = store.insert_rows([o.row(offset) for o, offset in plain])
            customers.apply(o for (o, _), is_new in zip(plain, new, strict=True) if is_new)
            amended: dict[CustomerKey, int] = {}
            if len(plain) < len(orders):
                amended = self._amend(store, customers, orders, offsets)
                for key, offset in amended.items():
                    as_of.setdefault(key, clocks[key[0]])
                    sources.setdefault(key, (tp.partition, offset))
            batch.clocks[tp.partition] = clocks
            batch.orders += len(orders)
            if wall:  # live data: recency against real time
                as_of = dict.fromkeys(as_of, now)
            served, unserved = customers.vectors(as_of)
            batch.features += [
                running_payload(*key, vector, sources[key], computed_at)
                for key, vector in served.items()
            ]
            # An amendment that moved a customer's last order away leaves them no vector: a
            # tombstone takes the old one off the compacted topic (and out of scoring).
            emptied = [key for key in amended if key not in served and key not in unserved]
            batch.features += tombstones(emptied)
            if unserved:
                unserved_history.append(store.history(unserved))
                unserved_as_of.update((key, as_of[key]) for key in unserved)
                unserved_sources.update((key, sources[key]) for key in unserved)
        if unserved_as_of:
            batch.features += feature_payloads(
                pl.concat(unserved_history), unserved_as_of, unserved_sources
            )
        return batch

    @staticmethod
    def _amend(
        store: PartitionStore,
        customers: RunningCustomers,
        orders: list[DecodedOrder],
        offsets: list[int],
    ) -> dict[CustomerKey, int]:
        """Apply the batch's amendments and withdrawals after its plain orders (a version only
        ever replaces a lower one, so their order does not matter); reload the customers they
        changed. Returns those customers, each with the offset that changed them."""
        changed: dict[CustomerKey, int] = {}
        for order, offset in zip(orders, offsets, strict=True):
            if order.amends:
                for key in store.amend(order.row(offset), order.withdrawn):
                    changed[key] = offset
        customers.reload(changed)
        return changed

    def _erased(self, order: DecodedOrder) -> bool:
        erasures = self.erasures
        return erasures is not None and erasures.covers(
            order.tenant_id, order.customer_id, order.order.occurred_at_us
        )

    def _commit(self, batch: PreparedBatch) -> None:
        for tp, records in batch.records.items():
            store = self.stores[tp.partition]
            store.save_tenant_clocks(batch.clocks[tp.partition])
            store.commit(records[-1].offset + 1)

    async def _observe(self) -> None:
        assert self._consumer is not None
        total_lag = 0
        for partition in list(self.stores):
            tp = TopicPartition(self.ctx.topics.transactions, partition)
            # The fetch high watermark, not end_offsets: Tansu under-reports the latter.
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            position = self.next_offsets[partition]
            if highwater < position:
                await self._restart_log(
                    tp, f"the log ends at {highwater}, before offset {position}"
                )
                continue
            lag = max(0, highwater - position)
            metrics.CONSUMER_LAG.labels(str(partition)).set(lag)
            total_lag += lag
            rebuild = self.rebuilding.get(partition)
            if rebuild is not None and position >= highwater:
                metrics.REBUILD_DURATION.observe(time.monotonic() - rebuild.started)
                del self.rebuilding[partition]
        self.health.behind(total_lag)
        if time.monotonic() - self._customers_counted_at > CUSTOMER_COUNT_EVERY_SECONDS:
            metrics.CUSTOMERS.set(sum(store.customers() for store in self.stores.values()))
            self._customers_counted_at = time.monotonic()

    async def _restart_log(self, tp: TopicPartition, why: str) -> None:
        """Keep the state, republish every customer's vector, consume the new log from its start."""
        assert self._consumer is not None and self._producer is not None
        partition, store = tp.partition, self.stores[tp.partition]
        log.warning(
            "the broker lost this partition's log; keeping the stored orders, republishing every "
            "customer's features and consuming the new log from its start",
            extra={"partition": partition, "detail": why},
        )
        metrics.LOG_RESETS.inc()
        self.health.rebuilding[partition] = f"the broker lost the log ({why}); republishing"
        beginning = (await self._consumer.beginning_offsets([tp]))[tp]
        payloads = await asyncio.to_thread(self._all_vectors, partition)
        await self._producer.send_all(self.ctx.topics.customer_features, payloads)
        await asyncio.to_thread(_store_next_offset, store, beginning)
        self.next_offsets[partition] = beginning
        self._consumer.seek(tp, beginning)
        del self.health.rebuilding[partition]

    def _all_vectors(self, partition: int) -> list[tuple[bytes, bytes]]:
        """Every stored customer's vector at the partition's tenant clock."""
        store = self.stores[partition]
        clocks = store.tenant_clocks()
        sources = store.customer_sources()
        if not sources:
            return []
        as_of = {key: clocks[key[0]] for key in sources}
        origins = {key: (partition, offset) for key, offset in sources.items()}
        return feature_payloads(store.all_history(), as_of, origins)

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


def _store_next_offset(store: PartitionStore, next_offset: int) -> None:
    store.begin()
    store.commit(next_offset)


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
                if owner.erasures is not None and (erased := sweep(store, owner.erasures)):
                    assert owner._producer is not None
                    await owner._producer.send_all(
                        owner.ctx.topics.customer_features, tombstones(erased)
                    )
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
            marks = {
                tp: mark
                for tp in assigned
                if owner.next_offsets[tp.partition] > 0
                and (mark := owner.stores[tp.partition].last_mark()) is not None
            }
            for tp, why in (await lost_logs(owner.ctx.settings, marks)).items():
                await owner._restart_log(tp, why)
