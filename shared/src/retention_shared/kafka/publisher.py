"""Publishing to one declared topic: the name from `TOPICS`, the service checked as a producer,
every record counted.

Each service's `publishers/<topic>.py` wraps one of these with the events it sends, so the tree
shows what goes out. Two ways out, chosen per call:

- `publish(event, key)`: one event through the service's FastStream broker (acks=all), for the
  occasional event (a model announced, an upload done, a retrain asked for);
- `send_all(records)`: many pre-serialized records through a `BulkProducer`, every one
  acknowledged before it returns, for hot paths (orders, vectors, score changes, rejects).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from retention_shared.events import Event
from retention_shared.service import ServiceContext
from retention_shared.topics import declared_for

__all__ = ["RecordSender", "Records", "TopicPublisher"]

Records = Iterable[tuple[bytes | None, bytes | None]]  # (key, value); a None value: tombstone


class RecordSender(Protocol):
    """What `send_all` goes through: a `BulkProducer` (tests pass a recorder)."""

    async def send_all(self, topic: str, records: Records) -> int: ...


class TopicPublisher:
    """Publishes to the declared topic `topic` (its name without prefix) for `ctx`'s service;
    raises `UndeclaredTopic` when `TOPICS` does not name the service among its producers."""

    def __init__(
        self, ctx: ServiceContext, topic: str, producer: RecordSender | None = None
    ) -> None:
        self.declaration = declared_for(ctx.name, topic, "producer")
        self.name = ctx.topic_to_publish(topic)
        self.producer = producer
        self._broker = ctx.broker
        self._counts = ctx.counts

    async def publish(self, event: Event, key: bytes | None) -> None:
        """Send one event through the service's broker, acknowledged; refuses an event type the
        topic is not declared to carry."""
        if not isinstance(event, self.declaration.events):
            raise TypeError(f"{self.declaration.name} does not carry {type(event).__name__}")
        await self._broker.publish(event.to_bytes(), self.name, key=key)
        self._counts.published(self.name)

    async def send_all(self, records: Records) -> int:
        """Send pre-serialized records in bulk; returns once every one is acknowledged."""
        if self.producer is None:
            raise RuntimeError(f"no bulk producer to send {self.declaration.name} with")
        sent = await self.producer.send_all(self.name, records)
        self._counts.published(self.name, sent)
        return sent
