"""`transactions` → the transaction lake, committing offsets only once the data is durable.

A `GroupConsumer` (the Kafka kit's batch consumer; group `retention-trainer.lake`, from the
earliest offset), not a FastStream subscriber, because it works in batches and decides when
offsets are committed. Per poll it decodes the whole batch, sends undecodable records to
`transactions.rejected` with their reason, appends the events to the lake in a worker thread
and, once `append` returned (and the rejects were acknowledged), commits the next offsets. A crash before the commit redelivers the
batch; the lake reads each event id once, so nothing counts twice.

Like the features service, it rejects an order dated more than `max_future_skew_hours` after its
record arrived (`future_order_datetime`), halves a batch whose values it cannot turn into lake
parts down to the record at fault and sends one that fails `poison_max_attempts` times to
`transactions.rejected` (reason `poison`); a storage or broker failure is retried with backoff
while `/readyz` says so.

Its positions are, per partition, the offset up to which the lake is complete. A training run
waits until they reach the high watermarks of when it started (`wait_caught_up`):
a `RetrainRequested` from an upload can arrive before the upload's orders are in the lake.
Tenants share partitions (records are keyed `tenant:customer`), so "the lake holds a tenant's
orders up to now" means "every partition is applied up to its high watermark of now".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import polars as pl
from aiokafka import ConsumerRecord

from retention_shared.erasure import ErasureList, to_microseconds
from retention_shared.event_columns import EventColumns
from retention_shared.event_time import US_PER_SECOND, latest_event_time_us
from retention_shared.events import EventDecodeError, OrderEvent, decode_event
from retention_shared.kafka.dead_letters import DeadLetters, RecordFault, Reject
from retention_shared.kafka.group_consumer import Batches, GroupConsumer
from retention_shared.order_decoder import OrderEventStruct, read_order_event
from retention_shared.service import ServiceContext
from retention_trainer import telemetry
from retention_trainer.lake import TransactionLake

log = logging.getLogger(__name__)

GROUP_ID = "retention-trainer.lake"
MAX_BATCH = 20_000
# Small part files are merged this often per tenant that received orders meanwhile.
COMPACT_EVERY_SECONDS = 60.0
LAKE_BYTES_EVERY_SECONDS = 15.0


class LakeConsumer(GroupConsumer):
    # An upload arrives in polls of a few thousand records while the consumer keeps pace with
    # ingest; each batch writes a part file per month it touches (an upload is in time order
    # per bucket, so most months), which compaction then merges again. A bulk poll waits up to
    # a second for more (`GroupConsumer`; less once the backlog is drained): fewer, larger parts.
    # Streamed orders are not held.
    bulk_records = 2000
    bulk_linger_seconds = 1.0

    def __init__(
        self,
        ctx: ServiceContext,
        lake: TransactionLake,
        max_batch: int = MAX_BATCH,
        erasures: ErasureList | None = None,
    ) -> None:
        super().__init__(ctx, ["transactions"], GROUP_ID, max_batch=max_batch)
        self.lake = lake
        # Customers erased from the lake (`consumers/customer_erasures.py`): their orders dated
        # up to the erasure are not stored again. An erasure holds `writing` while it rewrites.
        self.erasures = erasures
        self.writing = asyncio.Lock()
        # Compaction deletes part files a reader may be about to open: readers hold this lock.
        self._maintenance = asyncio.Lock()
        self._uncompacted: set[str] = set()
        self._unsized: set[str] = set()
        self._compacted_at = time.monotonic()
        self._sized_at = 0.0
        # Tenants whose lake changed, and those that received streamed orders, since the lake
        # watch last took them (`watch.py`: growth retrains and the outcome monitor).
        self._changed: set[str] = set()
        self._streamed: set[str] = set()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[TransactionLake]:
        """The lake, with compaction held off while the caller reads it."""
        async with self._maintenance:
            yield self.lake

    async def started(self) -> None:
        await asyncio.to_thread(self._observe_all_tenants)

    async def handle(self, batches: Batches) -> None:
        async with self.writing:
            await self.apply_isolating(batches, self._store)

    async def _store(self, batches: Batches) -> bool:
        """Append a batch to the lake and commit it; `RecordFault` if its values are at fault,
        False (rewound, after a pause) if the storage or the broker failed."""
        records = [record for batch in batches.values() for record in batch]
        try:
            events, rejects = _decode(
                records, self.ctx.settings.max_future_skew_hours, self._erased
            )
            frame = events.frame()
            parts = await asyncio.to_thread(self.lake.parts, frame)
        except Exception as error:
            raise RecordFault from error
        try:
            await self.dead_letters.send(rejects)
            await asyncio.to_thread(self.lake.write, parts)
        except Exception as error:
            await self.retry_later(batches, error)
            return False
        await self.commit({tp: batch[-1].offset + 1 for tp, batch in batches.items()})
        self.counts.consumed(self.topics[0], ok=len(events), rejected=len(rejects))
        self._uncompacted |= events.tenants
        self._changed |= events.tenants
        self._streamed |= _streamed_tenants(frame)
        self._unsized |= events.tenants
        return True

    def take_changed(self) -> tuple[set[str], set[str]]:
        """The tenants whose lake changed and those that received streamed orders since the
        last call (both emptied)."""
        changed, streamed = self._changed, self._streamed
        self._changed, self._streamed = set(), set()
        return changed, streamed

    def _erased(self, tenant_id: str, customer_id: str, occurred_at: datetime) -> bool:
        """An order of an erased customer dated up to the erasure (sent again, or re-read)."""
        erasures = self.erasures
        return erasures is not None and erasures.covers(
            tenant_id, customer_id, to_microseconds(occurred_at)
        )

    async def after_poll(self) -> None:
        await self._maintain()

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
                telemetry.LAKE_BYTES.labels(tenant).set(size)
            self._sized_at = now

    def _observe_all_tenants(self) -> None:
        for tenant in self.lake.tenants():
            telemetry.LAKE_BYTES.labels(tenant).set(self.lake.size_bytes(tenant))


def _streamed_tenants(frame: pl.DataFrame) -> set[str]:
    """Tenants with orders streamed one by one: `OrderEvent.source` "http" (`POST /v1/orders`)
    or "<topic>:<partition>:<offset>" of `orders.raw`. An upload's ("upload:<id>") ask for
    their run themselves (ingest's `RetrainRequested`)."""
    if frame.is_empty():
        return set()
    source = pl.col("source")
    streamed = frame.filter((source == "http") | source.str.contains("orders.raw:", literal=True))
    return set(streamed["tenant_id"].unique().to_list())


def _decode(
    records: list[ConsumerRecord],
    skew_hours: float,
    erased: Callable[[str, str, datetime], bool],
) -> tuple[EventColumns, list[Reject]]:
    """The batch's accepted events as lake columns (erased customers' left out), and its rejects.

    Each payload is read by the compiled reader (`read_order_event`, the features service's too);
    what it does not take goes to the `OrderEvent` model, which decides every reject."""
    events = EventColumns()
    rejects: list[Reject] = []
    for record in records:
        read = read_order_event(record.value)
        if read is None:
            try:
                event: OrderEvent | OrderEventStruct = decode_event(OrderEvent, record.value)
            except EventDecodeError as error:
                rejects.append(DeadLetters.undecodable(record, error))
                continue
            occurred_at = event.occurred_at
        else:
            event, occurred_at = read
        if occurred_at.timestamp() * US_PER_SECOND > latest_event_time_us(
            record.timestamp, skew_hours
        ):
            future = EventDecodeError(
                "future_order_datetime",
                f"occurred_at is more than {skew_hours:g} hours after the record arrived",
                field="occurred_at",
            )
            rejects.append(DeadLetters.undecodable(record, future))
        elif not erased(event.tenant_id, event.customer_id, occurred_at):
            events.add(event, occurred_at)
    return events, rejects
