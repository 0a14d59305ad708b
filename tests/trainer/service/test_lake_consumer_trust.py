"""The trainer's lake consumer on the real broker, fed what once stopped it: a future-dated order
is rejected, a record it cannot store is dead-lettered, and every other order reaches the lake
exactly once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, free_port
from retention_shared.events import RejectedRecord, decode_event
from retention_shared.kafka.clients import ensure_topics
from retention_shared.kafka.message_counts import POISON_RECORDS
from retention_shared.service import ServiceContext
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.lake import TransactionLake, open_lake
from tests.support.broker import isolated_settings
from tests.support.features_service import read_to_end
from tests.support.real_orders import order_stream, publish
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow


async def consume_until(settings: Settings, lake: TransactionLake, done, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    consumer = LakeConsumer(ServiceContext.create("trainer", settings), lake)
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            while not await asyncio.to_thread(done):
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
    return consumer


def test_future_orders_and_poison_records_do_not_stop_the_lake(
    kafka: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = isolated_settings(kafka, tmp_path / "data").model_copy(
        update={"poison_max_attempts": 2}
    )
    topics = ServiceContext.create("trainer", settings).topics
    stream = order_stream(TEST_DATA / "online_retail_slice.parquet", tmp_path / "ingest")
    (key, first), (poison_key, poison), *rest = stream.records
    future = json.loads(first)
    future.update(event_id="future-1", order_id="future-1", occurred_at="2030-01-01T00:00:00Z")
    poisoned = json.loads(poison)["event_id"]

    parts = TransactionLake.parts

    def failing_parts(events: pl.DataFrame):  # type: ignore[no-untyped-def]
        if poisoned in events.get_column("event_id").to_list():
            raise ValueError("a value the lake cannot store")
        return parts(events)

    monkeypatch.setattr(TransactionLake, "parts", staticmethod(failing_parts))
    records = [(key, json.dumps(future).encode()), (poison_key, poison), (key, first), *rest]
    asyncio.run(publish(settings, topics.transactions, records))
    lake = open_lake(settings)
    wanted = {json.loads(p)["event_id"] for _, p in [(key, first), *rest]}

    def reasons() -> dict[str, str]:
        found = asyncio.run(read_to_end(settings, topics.transactions_rejected))
        decoded = [decode_event(RejectedRecord, r.value) for r in found]
        return {r.record["event_id"]: r.reasons[0].code for r in decoded}

    def done() -> bool:
        return set(lake.events("default").get_column("event_id")) >= wanted and len(reasons()) == 2

    before = POISON_RECORDS.labels("trainer", topics.transactions)._value.get()
    consumer = asyncio.run(consume_until(settings, lake, done))
    assert reasons() == {"future-1": "future_order_datetime", poisoned: "poison"}
    stored = lake.events("default").get_column("event_id")
    assert set(stored) == wanted and stored.len() == len(wanted)
    assert POISON_RECORDS.labels("trainer", topics.transactions)._value.get() == before + 1
    assert consumer.health.check()[0]


def test_after_the_broker_lost_its_log_new_orders_still_reach_the_lake(tmp_path: Path) -> None:
    """An in-memory broker restarted empty on the same port: the consumer's position lies past
    the new log's end, and the orders sent after the restart must reach the lake all the same
    (the lost group makes the consumer join again and start from the new log's first offset)."""
    stream = order_stream(TEST_DATA / "online_retail_slice.parquet", tmp_path / "ingest")
    first, after = stream.records[:300], stream.records[300:330]
    port = free_port()
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix="lost.", data_dir=tmp_path / "data"
    )
    topics = ServiceContext.create("trainer", settings).topics
    lake = open_lake(settings)
    ids = {json.loads(p)["event_id"] for _, p in first + after}

    async def scenario() -> None:
        nonlocal broker
        consumer = LakeConsumer(ServiceContext.create("trainer", settings), lake)
        await ensure_topics(settings)
        await publish(settings, topics.transactions, first)
        await consumer.start()
        try:
            async with asyncio.timeout(90):
                while lake.events("default").height < len(first):
                    await asyncio.sleep(0.3)
                broker.stop()
                broker = await asyncio.to_thread(EmbeddedBroker(Settings(), port=port).start)
                await ensure_topics(settings)
                await publish(settings, topics.transactions, after)
                while set(lake.events("default").get_column("event_id")) != ids:
                    await asyncio.sleep(0.3)
        finally:
            await consumer.stop()

    broker = EmbeddedBroker(Settings(), port=port).start()
    try:
        asyncio.run(scenario())
    finally:
        broker.stop()
    assert lake.events("default").height == len(ids)
