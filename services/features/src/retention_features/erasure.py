"""Erasing a customer from the features service (`customer-erasures`).

Every instance reads every request (a consumer group of its own, named after its data
directory): each holds the partitions it owns. For a request it records the customer on its
`ErasureList` first — from then on `transactions` records of their orders dated up to the
request are skipped, in this batch or any replay — then, under the consumer's lock (never
beside a batch), deletes the customer's orders from every owned partition's state, drops the
running totals so they reload without them, and publishes a tombstone on `customer-features`
(scoring drops the customer when it reads it, and compaction removes the old vectors).

A partition assigned later (a restart, a rebalance, a restored snapshot) is swept against the
list when it is opened (`sweep`), so a state file that missed the request forgets the customer
too.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from retention_features.store import PartitionStore
from retention_shared.erasure import ErasureList
from retention_shared.events import CustomerErasureRequested
from retention_shared.kafka.dead_letters import TransientFailure

if TYPE_CHECKING:
    from retention_features.consumers.transactions import TransactionsConsumer

CustomerKey = tuple[str, str]


def sweep(store: PartitionStore, erasures: ErasureList) -> list[CustomerKey]:
    """Delete the orders of listed customers held in `store`, dated up to their erasure; returns
    the customers that had some."""
    listed = erasures.listed(store.customer_sources())
    if listed and store.erase_customers(dict(listed)):
        return sorted(listed)
    return []


class FeaturesErasure:
    def __init__(self, consumer: TransactionsConsumer, erasures: ErasureList) -> None:
        self.consumer = consumer
        self.erasures = erasures

    async def erase(self, request: CustomerErasureRequested) -> dict[str, int]:
        consumer = self.consumer
        if consumer.producer is None or not consumer.producer.started:
            raise TransientFailure("the features consumer is not started yet")
        key = (request.tenant_id, request.customer_id)
        await asyncio.to_thread(self.erasures.add, *key, request.requested_at)
        deleted = 0
        # The consumer's lock: no batch is prepared or committed meanwhile.
        async with consumer.lock:
            for partition, store in list(consumer.stores.items()):
                # Everything held, including orders dated after the request (within the skew).
                removed = await asyncio.to_thread(store.erase_customers, {key: None})
                if removed:
                    consumer.customers[partition].forget()
                    deleted += removed
        # Always: another instance, or an earlier life of this one, may have published vectors.
        await consumer.vectors.erase([key])
        return {"orders": deleted}
