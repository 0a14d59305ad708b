"""`model-events`: a tenant's new champion (`ModelPublished`), or a challenger the gate turned
down (`ModelRejected`, with both sets of numbers), keyed by tenant.

A training run sends one when the gate decided (`runs`); the announcer sends a champion's
`ModelPublished` again when the topic no longer names it (`announcer`). Scoring serves the last
`ModelPublished` per tenant.
"""

from __future__ import annotations

from retention_shared.events import ModelPublished, ModelRejected
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext

__all__ = ["ModelEventsPublisher"]


class ModelEventsPublisher:
    def __init__(self, ctx: ServiceContext) -> None:
        self._topic = TopicPublisher(ctx, "model-events")

    async def publish(self, event: ModelPublished | ModelRejected) -> None:
        """Send the event, acknowledged by the broker."""
        await self._topic.publish(event, key=event.tenant_id.encode())
