"""`customer-features` → the in-memory feature store (every partition, from the first offset,
read by the Kafka kit's `TopicReader`).

A tombstone (a record without a value) removes the customer: the features service writes one
when it erased them, and compaction keeps it until every reader has seen it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from retention_scoring.scorable import vector_problem
from retention_scoring.store import FeatureStore
from retention_shared.events import (
    CustomerFeatures,
    EventDecodeError,
    decode_events,
)
from retention_shared.kafka.dead_letters import DeadLetters, Reject

Touched = dict[str, set[str]]


@dataclass
class FeaturesConsumer:
    store: FeatureStore
    dead_letters: DeadLetters
    on_change: Callable[[Touched], None]
    # Customers removed by a tombstone (an erasure), per tenant.
    on_removed: Callable[[Touched], None] | None = None

    async def handle(self, records: list[ConsumerRecord]) -> None:
        # A tombstone (no value) is an erased customer; the rest are vectors.
        vectors = [record for record in records if record.value is not None]
        # Decoding is the costly part of a catch-up: a worker thread, so requests go on.
        decoded = iter(
            await asyncio.to_thread(
                decode_events, CustomerFeatures, [record.value for record in vectors]
            )
        )
        good: list[tuple[CustomerFeatures, int]] = []
        rejects: list[Reject] = []
        touched: Touched = {}
        removed: Touched = {}
        for record in records:
            if record.value is None:
                # In log order: the vectors before the tombstone first.
                _merge(touched, self.store.apply(good))
                good = []
                tenant_id, customer_id = _customer(record.key)
                if self.store.remove(tenant_id, customer_id):
                    removed.setdefault(tenant_id, set()).add(customer_id)
                    touched.get(tenant_id, set()).discard(customer_id)
                continue
            event = next(decoded)
            if not isinstance(event, EventDecodeError):
                problem = vector_problem(event)
                if problem is None:
                    good.append((event, record.partition))
                    continue
                event = problem
            rejects.append(DeadLetters.undecodable(record, event))
        await self.dead_letters.send(rejects)
        _merge(touched, self.store.apply(good))
        if records:
            self.dead_letters.counts.consumed(
                records[0].topic, ok=len(vectors) - len(rejects), rejected=len(rejects)
            )
        if removed and self.on_removed is not None:
            self.on_removed(removed)
        if touched := {tenant: ids for tenant, ids in touched.items() if ids}:
            self.on_change(touched)


def _merge(into: Touched, more: Touched) -> None:
    for tenant_id, customer_ids in more.items():
        into.setdefault(tenant_id, set()).update(customer_ids)


def _customer(key: bytes | None) -> tuple[str, str]:
    """(tenant, customer) of a `tenant:customer` key (tenant ids hold no colon)."""
    tenant_id, _, customer_id = (key or b"").decode("utf-8", errors="replace").partition(":")
    return tenant_id, customer_id
