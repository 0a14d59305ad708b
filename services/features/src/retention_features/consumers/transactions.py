"""`transactions` → per-partition state → `CustomerFeatures` on `customer-features`.

A `GroupConsumer` (the Kafka kit's batch consumer, not a FastStream subscriber) because the
service owns its offsets: they live in each partition's SQLite file, and on assignment the
consumer resumes from them — or from the partition's first offset, rebuilding a partition that
has no state file. Kafka gets the offsets once a second, for its tools only. Per poll:

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
partition's high watermark falls below the stored offset (the kit's `log_lost`). The state is kept (it is the only copy
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
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from aiokafka import ConsumerRecord, TopicPartition

from retention_features import telemetry
from retention_features.decoding import DecodedOrder, decode_orders
from retention_features.erasure import sweep
from retention_features.log_check import lost_logs
from retention_features.publishers.customer_features import CustomerFeaturesPublisher, tombstones
from retention_features.store import PartitionStore, to_microseconds
from retention_features.totals_cache import CustomerKey, RunningCustomers
from retention_features.vectors import batch_time, feature_payloads, running_payload
from retention_shared.config import ClockMode
from retention_shared.erasure import ErasureList
from retention_shared.event_time import latest_event_time_us
from retention_shared.events import EventDecodeError
from retention_shared.kafka.dead_letters import DeadLetters, RecordFault
from retention_shared.kafka.group_consumer import Batches, GroupConsumer
from retention_shared.service import ServiceContext

log = logging.getLogger(__name__)

GROUP_ID = "retention-features"
CUSTOMER_COUNT_EVERY_SECONDS = 15.0
# Fetch sizes: a replay gets several thousand records per partition per poll (fewer, larger
# batches: one vector per touched customer per batch, one acknowledgement wait per batch; 16 MB
# replays online_retail_II ~12% faster than 4 MB); a consumer at the end of the log waits at
# most this long for new records (on Tansu, the delay of a fetch that has little to return).
MAX_PARTITION_FETCH_BYTES = 16 * 1024 * 1024
FETCH_MAX_WAIT_MS = 25
BULK_RECORDS = 2000
BULK_LINGER_SECONDS = 1.0


@dataclass
class Rebuild:
    started: float


@dataclass
class PreparedBatch:
    """One poll's work, ready to publish: the partitions' transactions are open until commit."""

    records: Batches
    clocks: dict[int, dict[str, int]]
    features: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # None: tombstone
    rejects: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    orders: int = 0


class TransactionsConsumer(GroupConsumer):
    offsets_in_kafka = False  # they are in each partition's store
    gapless = True  # each offset is applied exactly once (the clocks would move otherwise)
    # A poll this large is an upload or a replay: gather up to a second more before applying
    # (less once the backlog is drained), so each customer's vector is computed and published
    # fewer times (an upload is in time order, so a customer's orders are spread over all of
    # it). A live stream's polls are far smaller.
    bulk_records = BULK_RECORDS
    bulk_linger_seconds = BULK_LINGER_SECONDS

    def __init__(
        self,
        ctx: ServiceContext,
        state_dir: Path,
        max_batch: int = 10000,
        erasures: ErasureList | None = None,
    ) -> None:
        super().__init__(
            ctx,
            ["transactions"],
            GROUP_ID,
            max_batch=max_batch,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            lag=telemetry.CONSUMER_LAG,
        )
        self.state_dir = state_dir
        self.stores: dict[int, PartitionStore] = {}
        # Each owned partition's customers' running totals (the stores hold the truth).
        self.customers: dict[int, RunningCustomers] = {}
        self.rebuilding: dict[int, Rebuild] = {}
        # Customers erased from this instance (`retention_features.erasure`); None: no erasures.
        self.erasures = erasures
        self.vectors = CustomerFeaturesPublisher(ctx, self.producer)
        self._customers_counted_at = 0.0

    def store_path(self, partition: int) -> Path:
        return self.state_dir / f"{self.topics[0]}-{partition}.sqlite"

    async def handle(self, batches: Batches) -> None:
        await self.apply_isolating(batches, self._apply_work)

    async def _apply_work(self, work: Batches) -> bool:
        """Compute, publish and commit; `RecordFault` if computing failed (rolled back)."""
        try:
            batch = await asyncio.to_thread(self._prepare, work)
        except Exception as error:
            self._rollback(work)
            raise RecordFault from error
        return await self._publish_and_commit(batch)

    async def dead_letter(
        self, tp: TopicPartition, record: ConsumerRecord, error: BaseException
    ) -> bool:
        """Send `record` to `transactions.rejected` and commit past it, applying nothing of it."""
        store = self.stores[tp.partition]
        await asyncio.to_thread(store.begin)
        return await self._publish_and_commit(
            PreparedBatch(
                records={tp: [record]},
                clocks={tp.partition: store.tenant_clocks()},
                rejects=[self.dead_letters.poisoned(record, error)],
            )
        )

    def _rollback(self, work: Batches) -> None:
        for tp in work:
            self.stores[tp.partition].rollback()
            self.customers[tp.partition].forget()

    async def _publish_and_commit(self, batch: PreparedBatch) -> bool:
        """Publish a prepared batch, then commit it; False (rewound, after a pause) if either
        failed, which is the broker's or the disk's doing, not a record's."""
        work = batch.records
        try:
            await asyncio.gather(
                self.vectors.send(batch.features), self.dead_letters.send(batch.rejects)
            )
            await asyncio.to_thread(self._commit, batch)
        except Exception as error:
            self._rollback(work)
            await self.retry_later(work, error)
            return False
        published_at = time.time()
        for records in work.values():
            for record in records:
                telemetry.FRESHNESS.observe(max(0.0, published_at - record.timestamp / 1000))
        await self.commit({tp: records[-1].offset + 1 for tp, records in work.items()})
        self.counts.consumed(self.topics[0], ok=batch.orders, rejected=len(batch.rejects))
        return True

    def _prepare(self, work: Batches) -> PreparedBatch:
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
                    batch.rejects.append(_rejected(record, order))
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

    async def observed(self, highwaters: dict[TopicPartition, int]) -> None:
        for tp, highwater in highwaters.items():
            rebuild = self.rebuilding.get(tp.partition)
            if rebuild is not None and self.positions[tp] >= highwater:
                telemetry.REBUILD_DURATION.observe(time.monotonic() - rebuild.started)
                del self.rebuilding[tp.partition]
        if time.monotonic() - self._customers_counted_at > CUSTOMER_COUNT_EVERY_SECONDS:
            telemetry.CUSTOMERS.set(sum(store.customers() for store in self.stores.values()))
            self._customers_counted_at = time.monotonic()

    async def log_lost(self, tp: TopicPartition, why: str) -> int:
        """Keep the state, republish every customer's vector, consume the new log from its start."""
        partition, store = tp.partition, self.stores[tp.partition]
        log.warning(
            "the broker lost this partition's log; keeping the stored orders, republishing every "
            "customer's features and consuming the new log from its start",
            extra={"partition": partition, "detail": why},
        )
        telemetry.LOG_RESETS.inc()
        self.health.rebuilding[partition] = f"the broker lost the log ({why}); republishing"
        beginning = (await self.first_offsets([tp]))[tp]
        payloads = await asyncio.to_thread(self._all_vectors, partition)
        await self.vectors.send(payloads)
        await asyncio.to_thread(_store_next_offset, store, beginning)
        del self.health.rebuilding[partition]
        return beginning

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

    async def assign(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Open each partition's store and resume where its state ends (rebuilding a partition
        without one from the log's first offset, republishing one whose log was lost)."""
        starts = {}
        for tp in tps:
            store = PartitionStore(self.store_path(tp.partition))
            if self.erasures is not None and (erased := sweep(store, self.erasures)):
                await self.vectors.erase(erased)
            self.stores[tp.partition] = store
            next_offset = store.next_offset()
            self.customers[tp.partition] = RunningCustomers(store, empty=next_offset is None)
            if next_offset is None:
                log.info(
                    "rebuilding partition from the beginning", extra={"partition": tp.partition}
                )
                telemetry.REBUILDS.inc()
                self.rebuilding[tp.partition] = Rebuild(started=time.monotonic())
                next_offset = (await self.first_offsets([tp]))[tp]
            starts[tp] = next_offset
        marks = {
            tp: mark
            for tp in tps
            if starts[tp] > 0 and (mark := self.stores[tp.partition].last_mark()) is not None
        }
        for tp, why in (await lost_logs(self.ctx.settings, marks)).items():
            starts[tp] = await self.log_lost(tp, why)
        return starts

    async def revoke(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            store = self.stores.pop(tp.partition, None)
            if store is not None:
                store.close()
            self.customers.pop(tp.partition, None)
            self.rebuilding.pop(tp.partition, None)


def _store_next_offset(store: PartitionStore, next_offset: int) -> None:
    store.begin()
    store.commit(next_offset)


def _rejected(record: ConsumerRecord, error: EventDecodeError) -> tuple[bytes | None, bytes]:
    telemetry.REJECTED.labels(error.code).inc()
    return DeadLetters.undecodable(record, error)
