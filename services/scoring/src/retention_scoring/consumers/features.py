"""`customer-features` → the in-memory feature store (every partition, from the first offset)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from retention_scoring.scorable import vector_problem
from retention_scoring.store import FeatureStore
from retention_shared.consuming import rejected_payload
from retention_shared.events import (
    CustomerFeatures,
    EventDecodeError,
    decode_events,
)
from retention_shared.kafka import BulkProducer
from retention_shared.metrics import MESSAGES

Touched = dict[str, set[str]]


@dataclass
class FeaturesConsumer:
    store: FeatureStore
    producer: BulkProducer
    topic: str
    rejected_topic: str
    service: str
    on_change: Callable[[Touched], None]

    async def handle(self, records: list[ConsumerRecord]) -> None:
        # Decoding is the costly part of a catch-up: a worker thread, so requests go on.
        decoded = await asyncio.to_thread(
            decode_events, CustomerFeatures, [record.value for record in records]
        )
        good: list[tuple[CustomerFeatures, int]] = []
        rejects: list[tuple[bytes | None, bytes]] = []
        for record, event in zip(records, decoded, strict=True):
            if not isinstance(event, EventDecodeError):
                problem = vector_problem(event)
                if problem is None:
                    good.append((event, record.partition))
                    continue
                event = problem
            rejects.append((record.key, rejected_payload(record, event)))
        if rejects:
            await self.producer.send_all(self.rejected_topic, rejects)
            MESSAGES.labels(self.service, self.topic, "consumed", "rejected").inc(len(rejects))
            MESSAGES.labels(self.service, self.rejected_topic, "published", "ok").inc(len(rejects))
        touched = self.store.apply(good)
        MESSAGES.labels(self.service, self.topic, "consumed", "ok").inc(len(good))
        if touched:
            self.on_change(touched)
