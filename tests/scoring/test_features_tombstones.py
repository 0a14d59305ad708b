"""A tombstone on `customer-features` removes the customer from scoring's store, in log order."""

from __future__ import annotations

import asyncio

import polars as pl
from aiokafka import ConsumerRecord

from retention_scoring.consumers.customer_features import FeaturesConsumer, Touched
from retention_scoring.publishers.customer_scores import CustomerScoresPublisher
from retention_scoring.score_events import ScoreEvents
from retention_scoring.store import FeatureStore
from retention_shared.config import Settings
from retention_shared.kafka.dead_letters import DeadLetters
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key
from tests.support.scoring_service import feature_events
from tests.support.uci_orders import TEST_DATA, load_orders


def record(offset: int, key: bytes, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("customer-features", 0, offset, 0, 0, key, value, None, 0, 0, [])


def test_a_tombstone_removes_the_customer_and_a_later_vector_brings_a_new_history() -> None:
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="acme")
    events = {
        e.customer_id: e
        for e in feature_events(
            orders.filter(pl.col("customer_id").is_in(["12437", "12583", "12680"]))
        )
    }
    changed: list[Touched] = []
    removed: list[Touched] = []
    store = FeatureStore()
    consumer = FeaturesConsumer(
        store,
        DeadLetters(ServiceContext.create("scoring", Settings())),
        changed.append,
        removed.append,
    )
    log = [
        record(i, customer_key("acme", c), e.to_bytes()) for i, (c, e) in enumerate(events.items())
    ]
    # 12437's vector then its tombstone in one batch; 12680's tombstone, then a new vector.
    log.append(record(3, customer_key("acme", "12437"), None))
    log.append(record(4, customer_key("acme", "12680"), None))
    log.append(record(5, customer_key("acme", "12680"), events["12680"].to_bytes()))
    log.append(record(6, customer_key("other", "12583"), None))  # another tenant's: no effect
    asyncio.run(consumer.handle(log))

    table = store.table("acme")
    assert sorted(table.ids) == ["12583", "12680"]
    assert removed == [{"acme": {"12437", "12680"}}]
    assert changed == [{"acme": {"12583", "12680"}}]
    assert table.history_frame()["customer_id"].unique().sort().to_list() == ["12583", "12680"]


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list]] = []

    async def send_all(self, topic: str, records: list) -> int:
        self.sent.append((topic, list(records)))
        return len(records)


def test_an_announced_customer_removed_gets_a_score_tombstone_once_caught_up() -> None:
    producer = RecordingProducer()
    ready = {"now": False}
    ctx = ServiceContext.create("scoring", Settings())
    publisher = CustomerScoresPublisher(ctx, producer)  # type: ignore[arg-type]
    events = ScoreEvents(None, publisher, ready=lambda: ready["now"])  # type: ignore[arg-type]
    events.published["acme"] = {"12437": ("high", "VIP", "At risk"), "12583": ("low", "Low", "New")}

    # Catching up: the tombstone read is an old one; forget it without writing.
    assert asyncio.run(events.forget("acme", ["12583"])) == 0
    assert producer.sent == [] and "12583" not in events.published["acme"]

    ready["now"] = True
    assert asyncio.run(events.forget("acme", ["12437", "never-announced"])) == 1
    assert producer.sent == [("customer-scores", [(b"acme:12437", None)])]
    assert events.published["acme"] == {}
