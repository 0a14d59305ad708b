"""Score, model, drift and upload events → recorded webhook deliveries, then committed offsets.

A `GroupConsumer` of the Kafka kit in group `retention-webhooks.dispatch` (replicas split the
partitions) reads `customer-scores`, `model-events`, `drift-events` and `upload-events` from the
earliest offset. Per poll it turns each record into a message (messages.py), finds the subscriptions of
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

from retention_shared.events import EventDecodeError
from retention_shared.kafka.dead_letters import DeadLetters, Reject
from retention_shared.kafka.group_consumer import Batches, GroupConsumer
from retention_shared.service import ServiceContext
from retention_webhooks.messages import TOPIC_TYPES, EventType, decode, message_of
from retention_webhooks.store import Message, Subscription, WebhookStore

log = logging.getLogger(__name__)

GROUP_ID = "retention-webhooks.dispatch"
MAX_BATCH = 2_000

Work = list[tuple[Message, list[str]]]


class Dispatcher(GroupConsumer):
    def __init__(
        self,
        ctx: ServiceContext,
        store: WebhookStore,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(ctx, list(TOPIC_TYPES), GROUP_ID, max_batch=MAX_BATCH)
        self.store = store
        self.on_recorded = on_recorded
        # The topics as consumed (with the prefix) → the webhook type each carries.
        self.kinds = {ctx.topic_to_consume(topic): kind for topic, kind in TOPIC_TYPES.items()}

    async def handle(self, batches: Batches) -> None:
        try:
            subscriptions = await asyncio.to_thread(self.store.subscriptions)
            work, rejects, counts = _plan(batches, self.kinds, subscriptions)
            await self.dead_letters.send(rejects)
            added = await asyncio.to_thread(
                self.store.record, work, self.ctx.settings.webhooks_max_attempts
            )
        except Exception as error:  # the store or the broker failed: read the batch again
            await self.retry_later(batches, error)
            return
        if added:
            self.on_recorded()
        await self.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
        for topic, (ok, rejected) in counts.items():
            self.counts.consumed(topic, ok=ok, rejected=rejected)


def _plan(
    batches: Batches, kinds: dict[str, EventType], subscriptions: list[Subscription]
) -> tuple[Work, list[Reject], dict[str, tuple[int, int]]]:
    """Each record's message and the subscriptions it goes to; the rejects; per topic, the
    records read and rejected."""
    wanted: dict[tuple[str, str], list[Subscription]] = {}
    for subscription in subscriptions:
        for kind in subscription.event_types:
            wanted.setdefault((subscription.tenant_id, kind), []).append(subscription)
    work: Work = []
    rejects: list[Reject] = []
    counts: dict[str, tuple[int, int]] = {}
    for tp, records in batches.items():
        kind = kinds[tp.topic]
        ok = rejected = 0
        for record in records:
            if record.value is None:  # an erasure's tombstone on customer-scores
                continue
            try:
                event = decode(kind, record.value)
            except EventDecodeError as error:
                rejects.append(DeadLetters.undecodable(record, error))
                rejected += 1
                continue
            ok += 1
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
        before_ok, before_rejected = counts.get(tp.topic, (0, 0))
        counts[tp.topic] = (before_ok + ok, before_rejected + rejected)
    return work, rejects, counts
