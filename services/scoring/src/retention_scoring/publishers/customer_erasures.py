"""`customer-erasures`: an admin's request to forget a customer (`CustomerErasureRequested`,
from `DELETE /v1/customers/{id}`), keyed `tenant:customer` like `transactions`, so a request
lands on the partition of the customer's orders. Every service erases what it holds and
confirms on `erasure-audit`."""

from __future__ import annotations

from retention_shared.events import CustomerErasureRequested
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key

__all__ = ["CustomerErasuresPublisher"]


class CustomerErasuresPublisher:
    def __init__(self, ctx: ServiceContext) -> None:
        self._topic = TopicPublisher(ctx, "customer-erasures")

    async def request(self, erasure: CustomerErasureRequested) -> None:
        """Send the request; returns once the broker acknowledged it."""
        await self._topic.publish(erasure, customer_key(erasure.tenant_id, erasure.customer_id))
