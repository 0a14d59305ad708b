"""`customer-scores`: a customer's `CustomerScore` when their risk band, value tier or segment
changes, keyed `tenant:customer` on a compacted topic; a tombstone when they are erased.

What to announce, and when, is `score_events`; this sends it in bulk, every record acknowledged
before it counts as announced. A re-published change keeps its `event_id`, so CRM subscribers can
drop duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

from retention_shared.events import CustomerScore
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key

__all__ = ["CustomerScoresPublisher"]


class CustomerScoresPublisher:
    def __init__(self, ctx: ServiceContext, producer: BulkProducer) -> None:
        self.producer = producer
        self._topic = TopicPublisher(ctx, "customer-scores", producer)

    @property
    def started(self) -> bool:
        return self.producer.started

    async def send(self, scores: list[CustomerScore]) -> None:
        await self._topic.send_all(
            (customer_key(score.tenant_id, score.customer_id), score.to_bytes()) for score in scores
        )

    async def erase(self, tenant_id: str, customer_ids: Iterable[str]) -> None:
        """Tombstones: subscribers delete the customers, compaction drops their scores."""
        await self._topic.send_all(
            [(customer_key(tenant_id, customer_id), None) for customer_id in customer_ids]
        )
