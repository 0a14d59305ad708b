"""`BulkProducer.send_all` on the real broker: records go out in per-partition batches, each on
the partition aiokafka's own partitioner gives its key, in order per key, every one acknowledged;
tombstones and keyless records too; a record larger than a request is refused."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from retention_shared.config import Settings
from retention_shared.kafka.bulk_producer import BulkProducer, key_hash
from tests.support.kafka_reading import read_until

PARTITIONS = list(range(Settings().topic_partitions))  # as ensure_topics made them


def test_key_hash_picks_the_default_partitioners_partition() -> None:
    for number in range(500):
        key = f"tenant-{number % 7}:customer-{number}".encode()
        expected = DefaultPartitioner()(key, PARTITIONS, PARTITIONS)
        assert PARTITIONS[key_hash(key) % len(PARTITIONS)] == expected


def test_send_all_lands_every_record_on_its_keys_partition_in_order(
    kafka_settings: Settings,
) -> None:
    topic = f"{kafka_settings.topic_prefix}transactions"
    # ~2.4 MB across 40 keys: several 512 KiB batches per partition.
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"t:c{n % 40}".encode(), f"{n:06d}".encode() + b"x" * 800) for n in range(3000)
    ]
    records += [(b"t:c1", None), (None, b"keyless")]

    async def scenario() -> list:
        producer = BulkProducer(kafka_settings)
        await producer.start()
        try:
            assert await producer.send_all(topic, records) == len(records)
            with pytest.raises(MessageSizeTooLargeError):
                await producer.send_all(topic, [(b"t:big", b"y" * 1_100_000)])
        finally:
            await producer.stop()
        return await read_until(kafka_settings, topic, lambda got: len(got) >= len(records))

    received = asyncio.run(scenario())
    assert len(received) == len(records)
    by_key: dict[bytes | None, list[bytes | None]] = defaultdict(list)
    for record in sorted(received, key=lambda r: (r.partition, r.offset)):
        if record.key is not None:
            assert record.partition == DefaultPartitioner()(record.key, PARTITIONS, PARTITIONS)
            assert record.timestamp > 0
        by_key[record.key].append(record.value)
    expected: dict[bytes | None, list[bytes | None]] = defaultdict(list)
    for key, value in records:
        expected[key].append(value)
    assert by_key == expected  # per key: every value, in the order sent; the tombstone last
