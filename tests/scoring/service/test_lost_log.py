"""A scoring topic reader whose broker restarted empty reads the new log from its start.

On a broker of its own (the in-memory embedded broker, restarted on the same port), a reader
that had read real customer vectors further than the new log reaches must still get the vectors
published after the restart — without it, it waits past the new log's end forever.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import ConsumerRecord

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, free_port
from retention_shared.kafka.clients import ensure_topics
from retention_shared.kafka.topic_reader import TopicReader
from retention_shared.service import ServiceContext
from retention_shared.topics import Topics, customer_key
from tests.support.real_orders import publish
from tests.support.scoring_service import feature_events
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow


def test_a_reader_reads_the_new_log_after_the_broker_lost_the_old_one() -> None:
    vectors = feature_events(load_orders(TEST_DATA / "online_retail_slice.parquet"))
    records = [(customer_key(v.tenant_id, v.customer_id), v.to_bytes()) for v in vectors]
    first, after = records * 3, records[:10]  # the new log stays shorter than the old one
    port = free_port()
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix="lost.")
    topic = Topics.with_prefix("lost.").customer_features
    seen: list[ConsumerRecord] = []

    async def handle(batch: list[ConsumerRecord]) -> None:
        seen.extend(batch)

    async def until(count: int, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while len(seen) < count:
                await asyncio.sleep(0.2)

    async def scenario() -> None:
        nonlocal broker
        await ensure_topics(settings)
        await publish(settings, topic, first)
        reader = TopicReader(
            ServiceContext.create("scoring", settings), "customer-features", handle
        )
        await reader.start()
        try:
            await until(len(first))
            broker.stop()
            # start() creates topics with a loop of its own: off this one.
            broker = await asyncio.to_thread(EmbeddedBroker(Settings(), port=port).start)
            await ensure_topics(settings)
            await publish(settings, topic, after)
            await until(len(first) + len(after))
        finally:
            await reader.stop()

    broker = EmbeddedBroker(Settings(), port=port).start()
    try:
        asyncio.run(scenario())
    finally:
        broker.stop()
    assert sorted(r.value for r in seen[len(first) :]) == sorted(v for _, v in after)
