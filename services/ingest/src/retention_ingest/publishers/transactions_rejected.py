"""`transactions.rejected`: an `orders.raw` record that cannot become orders, with a reason per
problem (`RejectedRecord`: the record as sent, where it was — topic, partition, offset — and its
tenant when the header named one).

HTTP answers its caller with the problem and an upload writes its rejected rows to its
`rejects.csv`; a record on a topic has no one to answer, so it goes here, through the Kafka
kit's dead-letter path (which also carries the records a consumer kept failing on, as `poison`).
"""

from __future__ import annotations

from faststream.kafka import KafkaMessage

from retention_shared.events import RejectReason
from retention_shared.kafka.dead_letters import DeadLetters
from retention_shared.kafka.subscribers import record_of
from retention_shared.service import ServiceContext

__all__ = ["RejectedOrders"]


class RejectedOrders:
    def __init__(self, ctx: ServiceContext) -> None:
        self._dead_letters = DeadLetters(ctx)

    async def reject(
        self, message: KafkaMessage, reasons: list[RejectReason], tenant_id: str | None = None
    ) -> None:
        """Send the consumed record with its reasons, acknowledged, and count it rejected."""
        await self._dead_letters.reject(record_of(message), reasons, tenant_id)
