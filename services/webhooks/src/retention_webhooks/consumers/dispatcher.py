"""Score, model, drift and upload events → recorded webhook deliveries, then committed offsets.

A raw aiokafka consumer in group `retention-webhooks.dispatch` (replicas split the partitions)
reads `customer-scores`, `model-events`, `drift-events` and `upload-events` from the earliest
offset. Per poll it turns each record into a message (messages.py), finds the subscriptions of
the event's tenant that want its type and existed when the record was written (so a new
subscription is not sent history), records message and deliveries in one SQLite transaction
and only then commits the offsets: a crash before the commit reads the records again and
records nothing twice; nothing read is lost. Sending is the deliverer's job (delivery.py), so
a slow subscriber never holds up the partitions. A record that is not a readable event goes to
`transactions.rejected` with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from retention_shared.consumer_health import ConsumerHealth
from retention_shared.consuming import rejected_payload
from retention_shared.events import EventDecodeError
from retention_shared.kafka import BulkProducer, aiokafka_options
from retention_shared.metrics import MESSAGES
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel
from retention_webhooks.messages import EventType, decode, message_of, topics_read
from retention_webhooks.store import Message, Subscription, WebhookStore

log = logging.getLogger(__name__)

GROUP_ID = "retention-webhooks.dispatch"
MAX_BATCH = 2_000
RETRY_SECONDS, MAX_RETRY_SECONDS = 1.0, 30.0

Batches = dict[TopicPartition, list[ConsumerRecord]]
Work = list[tuple[Message, list[str]]]


@dataclass
class Dispatcher:
    ctx: ServiceContext
    store: WebhookStore
    on_recorded: Callable[[], None] = lambda: None
    assigned: set[TopicPartition] = field(default_factory=set)
    health: ConsumerHealth = field(default_factory=ConsumerHealth)
    _consumer: AIOKafkaConsumer | None = None
    _producer: BulkProducer | None = None
    _task: asyncio.Task[None] | None = None
    _retry_seconds: float = RETRY_SECONDS

    async def start(self) -> None:
        self._producer = BulkProducer(self.ctx.settings)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            group_id=GROUP_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,  # Tansu answers a fetch only at its deadline when little is new
            **aiokafka_options(self.ctx.settings),
        )
        self._consumer.subscribe(list(topics_read(self.ctx.topics)), listener=_Rebalance(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel([self._task])
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=MAX_BATCH)
                batches = {tp: records for tp, records in batches.items() if records}
                if batches:
                    await self._dispatch(batches)
                await self._observe_lag()
            except asyncio.CancelledError:
                raise
            except Exception:  # never a dead task (a stall with lag shows in readiness)
                log.exception("dispatching webhook events failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)

    async def _dispatch(self, batches: Batches) -> None:
        assert self._consumer is not None and self._producer is not None
        kinds = topics_read(self.ctx.topics)
        try:
            subscriptions = await asyncio.to_thread(self.store.subscriptions)
            work, rejects, counts = _plan(batches, kinds, subscriptions)
            await self._producer.send_all(self.ctx.topics.transactions_rejected, rejects)
            added = await asyncio.to_thread(
                self.store.record, work, self.ctx.settings.webhooks_max_attempts
            )
        except Exception as error:  # the store or the broker failed: read the batch again
            log.warning(
                "could not record webhook deliveries; reading the batch again",
                extra={"error": f"{type(error).__name__}: {error}"},
            )
            self.health.failed(error)
            for tp, records in batches.items():
                self._consumer.seek(tp, records[0].offset)
            await asyncio.sleep(self._retry_seconds)
            self._retry_seconds = min(MAX_RETRY_SECONDS, self._retry_seconds * 2)
            return
        self._retry_seconds = RETRY_SECONDS
        self.health.progressed()
        if added:
            self.on_recorded()
        try:
            await self._consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
        except Exception as error:  # e.g. a rebalance: read again, recorded once
            log.warning(
                "offset commit failed; the batch may be read again", extra={"error": str(error)}
            )
        for (topic, outcome), n in counts.items():
            MESSAGES.labels(self.ctx.name, topic, "consumed", outcome).inc(n)
        if rejects:
            MESSAGES.labels(
                self.ctx.name, self.ctx.topics.transactions_rejected, "published", "ok"
            ).inc(len(rejects))

    async def _observe_lag(self) -> None:
        """Records behind the high watermarks of the last fetches (what readiness calls stuck
        when it does not shrink)."""
        consumer = self._consumer
        assert consumer is not None
        lag = 0
        for tp in list(self.assigned):
            high = consumer.highwater(tp)
            if high is not None:
                lag += max(0, high - await consumer.position(tp))
        self.health.behind(lag)


def _plan(
    batches: Batches, kinds: dict[str, EventType], subscriptions: list[Subscription]
) -> tuple[Work, list[tuple[bytes | None, bytes]], dict[tuple[str, str], int]]:
    """Each record's message and the subscriptions it goes to; the rejects; counts by topic."""
    wanted: dict[tuple[str, str], list[Subscription]] = {}
    for subscription in subscriptions:
        for kind in subscription.event_types:
            wanted.setdefault((subscription.tenant_id, kind), []).append(subscription)
    work: Work = []
    rejects: list[tuple[bytes | None, bytes]] = []
    counts: dict[tuple[str, str], int] = {}
    for tp, records in batches.items():
        kind = kinds[tp.topic]
        for record in records:
            if record.value is None:  # an erasure's tombstone on customer-scores
                continue
            try:
                event = decode(kind, record.value)
            except EventDecodeError as error:
                rejects.append((record.key, rejected_payload(record, error)))
                counts[(tp.topic, "rejected")] = counts.get((tp.topic, "rejected"), 0) + 1
                continue
            counts[(tp.topic, "ok")] = counts.get((tp.topic, "ok"), 0) + 1
            if event is None:
                continue
            written_at = record.timestamp / 1000
            targets = [
                s.id
                for s in wanted.get((event.tenant_id, kind.value), [])
                if s.created_at.timestamp() <= written_at
            ]
            if targets:
                work.append((message_of(kind, event, record.value), targets))
    return work, rejects, counts


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: Dispatcher) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.owner.assigned.difference_update(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owner.assigned.update(assigned)
