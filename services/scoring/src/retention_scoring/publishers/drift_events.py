"""`drift-events`: live features moved away from the champion's training distributions
(`DriftDetected`: PSI per feature, the threshold, the window), keyed by tenant — once per model
version and drift episode (`drift_watch` decides), by the one instance that leads."""

from __future__ import annotations

from retention_shared.events import DriftDetected
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext

__all__ = ["DriftEventsPublisher"]


class DriftEventsPublisher:
    def __init__(self, ctx: ServiceContext, producer: BulkProducer) -> None:
        self._topic = TopicPublisher(ctx, "drift-events", producer)

    async def send(self, event: DriftDetected) -> None:
        await self._topic.send_all([(event.tenant_id.encode(), event.to_bytes())])
