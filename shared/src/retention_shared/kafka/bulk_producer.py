"""A raw aiokafka producer for hot paths: send many records, then await every acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from retention_shared.config import Settings
from retention_shared.kafka.clients import make_producer

__all__ = ["BulkProducer"]


class BulkProducer:
    """Batched with a short linger; `send_all` returns only when the broker acknowledged every
    record and raises if any was not (or not within `timeout` seconds).

    Where FastStream's broker sends the occasional event, this carries what goes out in bulk:
    ingest's orders, features' vectors, scoring's score changes, every consumer's rejects.
    """

    def __init__(self, settings: Settings, timeout: float = 15.0, linger_ms: int = 5) -> None:
        self.settings = settings
        self.timeout = timeout
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        producer = make_producer(
            self.settings,
            linger_ms=self.linger_ms,
            max_batch_size=512 * 1024,
            request_timeout_ms=int(self.timeout * 1000),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # a failed start leaves it open ("Unclosed AIOKafkaProducer")
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send_all(
        self, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
    ) -> int:
        """Send `(key, value)` records (a None value is a tombstone); returns how many."""
        if self._producer is None:
            raise RuntimeError("not connected to the broker yet")
        async with asyncio.timeout(self.timeout):
            pending = [await self._producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*pending)
        return len(pending)
