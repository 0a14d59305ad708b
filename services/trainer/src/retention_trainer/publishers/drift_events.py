"""`drift-events`: the outcome monitor's `DriftDetected(kind=performance)`, keyed by tenant.

Scoring publishes the features kind on the same topic; the trainer's triggers consumer turns
either into a run, and the webhooks service forwards both as `drift.detected`.
"""

from __future__ import annotations

from retention_shared.events import DriftDetected
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext

__all__ = ["DriftEventsPublisher"]


class DriftEventsPublisher:
    def __init__(self, ctx: ServiceContext) -> None:
        self._topic = TopicPublisher(ctx, "drift-events")

    async def publish(self, event: DriftDetected) -> None:
        """Send the event, acknowledged by the broker."""
        await self._topic.publish(event, key=event.tenant_id.encode())
