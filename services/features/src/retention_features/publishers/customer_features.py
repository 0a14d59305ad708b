"""`customer-features`: each customer's latest vector, and a tombstone when they are gone.

Keyed `tenant:customer` on a compacted topic, so the last record per customer is their vector.
The vectors are built in `vectors` (from the running totals, or the vectorized definition) and go
out in bulk with the batch they follow from; the batch's offsets are committed only after the
broker acknowledged every one. A tombstone (a null value) removes a customer who was erased, or
whom an amendment left without orders.
"""

from __future__ import annotations

from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.publisher import Records, TopicPublisher
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key

__all__ = ["CustomerFeaturesPublisher", "tombstones"]

CustomerKey = tuple[str, str]


def tombstones(customers: list[CustomerKey]) -> list[tuple[bytes, None]]:
    """`customer-features` records that delete the customers' vectors."""
    return [(customer_key(tenant, customer), None) for tenant, customer in customers]


class CustomerFeaturesPublisher:
    def __init__(self, ctx: ServiceContext, producer: BulkProducer | None) -> None:
        self._topic = TopicPublisher(ctx, "customer-features", producer)

    async def send(self, records: Records) -> None:
        """Vectors (`CustomerFeatures` JSON) and tombstones, every one acknowledged."""
        await self._topic.send_all(records)

    async def erase(self, customers: list[CustomerKey]) -> None:
        """Tombstones for the customers: scoring drops them, compaction the old vectors."""
        await self._topic.send_all(tombstones(customers))
