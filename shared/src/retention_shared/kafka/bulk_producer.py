"""A raw aiokafka producer for hot paths: send many records, then await every acknowledgement.

Records go into one aiokafka `BatchBuilder` per partition (`create_batch` / `send_batch`), not
through `send` one by one: `send` costs a future, a metadata wait and a pure-Python murmur2 per
record, a quarter of an upload's CPU in ingest (py-spy, `bench/scale` k = 4). The partition is
the one aiokafka's `DefaultPartitioner` picks (murmur2 of the key, remembered per key: an upload
repeats each customer's key ~7 times); records without a key still go through `send`, which
picks a random available partition as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from retention_shared.config import Settings
from retention_shared.kafka.clients import make_producer

__all__ = ["BulkProducer", "key_hash"]

# aiokafka's default, which `make_producer` keeps: the largest request (and record) it sends.
MAX_REQUEST_SIZE = 1_048_576
# Keys whose murmur2 is remembered (~100 B each); the cache is emptied when full.
_HASHES_KEPT = 200_000
_hashes: dict[bytes, int] = {}


def key_hash(key: bytes) -> int:
    """murmur2 of `key` as `DefaultPartitioner` uses it (non-negative), remembered."""
    found = _hashes.get(key)
    if found is None:
        if len(_hashes) >= _HASHES_KEPT:
            _hashes.clear()
        found = _hashes[key] = murmur2(key) & 0x7FFFFFFF
    return found


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
        """Send `(key, value)` records (a None value is a tombstone); returns how many. Records
        of one key keep their order (one partition, batches queued in order)."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("not connected to the broker yet")
        sent = 0
        async with asyncio.timeout(self.timeout):
            partitions = sorted(await producer.partitions_for(topic))
            open_batches: dict[int, Any] = {}
            pending: list[Awaitable[Any]] = []
            for key, value in records:
                sent += 1
                if key is None:  # a random available partition, as `send` picks it
                    pending.append(await producer.send(topic, value, key=None))
                    continue
                _check_size(key, value)
                partition = partitions[key_hash(key) % len(partitions)]
                batch = open_batches.get(partition)
                if batch is None:
                    batch = open_batches[partition] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value) is None:  # full
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = open_batches[partition] = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value)  # fits an empty batch
            for partition, batch in open_batches.items():
                if batch.record_count():
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*pending)
        return sent


def _check_size(key: bytes, value: bytes | None) -> None:
    """`send`'s own check: a record larger than a request is refused before anything is sent
    for it."""
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
    if size > MAX_REQUEST_SIZE:
        raise MessageSizeTooLargeError(
            f"The message is {size} bytes when serialized which is larger than the maximum "
            "request size you have configured with the max_request_size configuration"
        )
