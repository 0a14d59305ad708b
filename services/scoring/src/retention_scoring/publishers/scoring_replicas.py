"""`scoring-replicas`: what this sharded replica serves (`ScoringReplica`, keyed by replica id),
and a tombstone when it stops, so the others stop routing to it at once."""

from __future__ import annotations

from retention_shared.events import ScoringReplica
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext

__all__ = ["ScoringReplicasPublisher"]


class ScoringReplicasPublisher:
    def __init__(self, ctx: ServiceContext, producer: BulkProducer) -> None:
        self._topic = TopicPublisher(ctx, "scoring-replicas", producer)

    async def announce(self, event: ScoringReplica) -> None:
        await self._topic.send_all([(event.replica_id.encode(), event.to_bytes())])

    async def leave(self, replica_id: str) -> None:
        await self._topic.send_all([(replica_id.encode(), None)])
