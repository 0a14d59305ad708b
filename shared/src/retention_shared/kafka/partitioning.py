"""Which partition a keyed record lands on: the producers' partitioner, computed anywhere.

Every producer of the project (aiokafka's, under FastStream and the `BulkProducer`) leaves the
choice to aiokafka's `DefaultPartitioner`: murmur2 of the key bytes, as the Java client does,
masked positive, modulo the topic's partition count. A sharded reader (scoring) uses this to
know which replica holds a customer without asking the broker.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["partition_for"]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a record with `key` on a topic of `partitions` partitions."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)
