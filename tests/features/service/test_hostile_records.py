"""The features service under records that once stopped it, and a broker that lost its log.

All on the real broker, with real orders (a slice of online_retail_II, cleaned by ingest's own
pipeline): a record with an infinite amount or a date years ahead is rejected with its reason
while every other tenant's orders are applied; a record the service fails on again and again is
poison — dead-lettered, and the partition moves on; a broker restarted empty is noticed, the
state kept, every vector republished and new orders applied again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from retention_features import totals_cache
from retention_features.consumers.transactions import TransactionsConsumer
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, free_port
from retention_shared.events import RejectedRecord, decode_event
from retention_shared.kafka.clients import ensure_topics
from retention_shared.kafka.message_counts import POISON_RECORDS
from retention_shared.service import ServiceContext
from retention_shared.topics import Topics
from tests.support.features_service import FeaturesProcess, last_vectors, read_to_end
from tests.support.real_orders import OrderStream, order_stream, publish
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> OrderStream:
    return order_stream(
        TEST_DATA / "online_retail_II_slice.parquet", tmp_path_factory.mktemp("ingest")
    )


def fresh_settings(bootstrap: str) -> Settings:
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"h{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(settings))
    return settings


def as_tenant(records: list[tuple[bytes, bytes]], tenant: str) -> list[tuple[bytes, bytes]]:
    """The same orders for another tenant (its own keys and event ids)."""
    out = []
    for _, payload in records:
        event = json.loads(payload)
        event.update(tenant_id=tenant, event_id=f"{tenant}-{event['event_id']}"[:32])
        out.append((f"{tenant}:{event['customer_id']}".encode(), json.dumps(event).encode()))
    return out


def altered(payload: bytes, **changes: object) -> bytes:
    event = json.loads(payload)
    for path, value in changes.items():
        target = event
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[leaf] = value
    return json.dumps(event).encode()


def wait_for(predicate, timeout: float = 90.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {timeout}s: {what}")
        time.sleep(0.5)


def vectors_of(settings: Settings) -> dict[bytes, dict]:
    topic = Topics.with_prefix(settings.topic_prefix).customer_features
    return last_vectors(asyncio.run(read_to_end(settings, topic)))


def rejected_of(settings: Settings) -> list[RejectedRecord]:
    topic = Topics.with_prefix(settings.topic_prefix).transactions_rejected
    return [
        decode_event(RejectedRecord, r.value) for r in asyncio.run(read_to_end(settings, topic))
    ]


def test_infinite_amounts_and_future_dates_are_rejected_and_every_tenant_moves_on(
    kafka: EmbeddedBroker, stream: OrderStream, tmp_path: Path
) -> None:
    settings = fresh_settings(kafka.bootstrap)
    transactions = Topics.with_prefix(settings.topic_prefix).transactions
    (key, first), *_ = stream.records
    customer = json.loads(first)["customer_id"]
    hostile = [
        # What ingest used to publish for `quantity: 1e308`: an infinite total.
        (
            key,
            altered(
                first,
                event_id="evil-1",
                order_id="evil-1",
                lines__0__quantity=1e308,
                total=1e308 * 10,
            ),
        ),
        (key, altered(first, event_id="evil-2", order_id="evil-2", total=-1e308)),
        # An existing customer's order dated 2030: it would move the tenant clock 19 years.
        (
            key,
            altered(
                first, event_id="evil-3", order_id="evil-3", occurred_at="2030-01-01T00:00:00Z"
            ),
        ),
    ]
    other_tenant = as_tenant(stream.records, "other")
    asyncio.run(publish(settings, transactions, hostile + stream.records + other_tenant))
    process = FeaturesProcess(settings, tmp_path / "data", tmp_path / "features.log").start()
    customers = {k for k, _ in stream.records} | {k for k, _ in other_tenant}
    try:
        wait_for(lambda: set(vectors_of(settings)) >= customers, what="every customer's vector")
    finally:
        process.stop()
    reasons = {r.source_id: (r.reasons[0].code, r.reasons[0].field) for r in rejected_of(settings)}
    assert sorted(reasons.values()) == [
        ("future_order_datetime", "occurred_at"),
        ("invalid_event", "lines.0.quantity"),
        ("invalid_event", "total"),
    ]
    # The 2030 order moved no clock: the customer's vector is at the data's own (2010-11) clock.
    assert vectors_of(settings)[f"default:{customer}".encode()]["as_of"].year < 2012
    assert "Traceback" not in (tmp_path / "features.log").read_text()


async def run_in_process(
    settings: Settings,
    data_dir: Path,
    until: callable,
    timeout: float = 90.0,  # type: ignore[valid-type]
) -> TransactionsConsumer:
    ctx = ServiceContext.create("features", settings.model_copy(update={"data_dir": data_dir}))
    consumer = TransactionsConsumer(ctx, state_dir=data_dir / "features", max_batch=500)
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            while not await asyncio.to_thread(until):
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
    return consumer


def test_a_record_that_keeps_failing_is_dead_lettered_and_the_partition_moves_on(
    kafka: EmbeddedBroker, stream: OrderStream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fresh_settings(kafka.bootstrap).model_copy(update={"poison_max_attempts": 2})
    topics = Topics.with_prefix(settings.topic_prefix)
    (poison_key, poison_payload), *rest = stream.records
    poisoned = json.loads(poison_payload)["order_id"]
    calls = {"poison": 0}
    apply = totals_cache.RunningCustomers.apply

    def failing_apply(self, orders):  # type: ignore[no-untyped-def]
        orders = list(orders)
        if any(o.order.order_id == poisoned for o in orders):
            calls["poison"] += 1
            raise ArithmeticError("a value this code cannot handle")
        return apply(self, orders)

    monkeypatch.setattr(totals_cache.RunningCustomers, "apply", failing_apply)
    asyncio.run(publish(settings, topics.transactions, [(poison_key, poison_payload), *rest]))
    others = {k for k, _ in rest if k != poison_key}
    before = POISON_RECORDS.labels("features", topics.transactions)._value.get()
    consumer = asyncio.run(
        run_in_process(
            settings,
            tmp_path / "data",
            lambda: set(vectors_of(settings)) >= others and rejected_of(settings),
        )
    )
    poison = [r for r in rejected_of(settings) if r.reasons[0].code == "poison"]
    assert len(poison) == 1
    assert poison[0].record["order_id"] == poisoned
    assert "ArithmeticError" in poison[0].reasons[0].message
    # In the failed batch, in each half that held it, then alone poison_max_attempts times.
    assert calls["poison"] >= 1 + settings.poison_max_attempts
    after = POISON_RECORDS.labels("features", topics.transactions)._value.get()
    assert after == before + 1
    assert consumer.health.check()[0]


def metric_value(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_broker_restarted_empty_is_noticed_and_new_orders_are_applied(
    stream: OrderStream, tmp_path: Path
) -> None:
    port = free_port()
    first_half, second_half = stream.records[:300], stream.records[300:330]
    broker = EmbeddedBroker(Settings(), port=port).start()
    settings = fresh_settings(broker.bootstrap)
    transactions = Topics.with_prefix(settings.topic_prefix).transactions
    process = FeaturesProcess(settings, tmp_path / "data", tmp_path / "features.log")
    try:
        asyncio.run(publish(settings, transactions, first_half))
        process.start()
        wait_for(lambda: set(vectors_of(settings)) >= {k for k, _ in first_half}, what="first")
        process.stop()
        # The in-memory broker restarts empty on the same port: its log starts at 0 again.
        broker.stop()
        broker = EmbeddedBroker(Settings(), port=port).start()
        asyncio.run(ensure_topics(settings))
        process.start()
        # Scoring reads customer-features whole: every customer's vector must come back.
        wait_for(
            lambda: set(vectors_of(settings)) >= {k for k, _ in first_half}, what="republished"
        )
        asyncio.run(publish(settings, transactions, second_half))
        # Every order of both halves applied once: each customer's order counts say so.
        wanted: dict[bytes, list[int]] = {}
        for key, payload in first_half + second_half:
            counts = wanted.setdefault(key, [0, 0])
            counts[json.loads(payload)["kind"] == "cancellation"] += 1

        def applied() -> bool:
            vectors = vectors_of(settings)
            return all(
                key in vectors
                and [
                    vectors[key]["history"]["purchase_orders"],
                    vectors[key]["history"]["cancellations"],
                ]
                == counts
                for key, counts in wanted.items()
            )

        wait_for(applied, what="orders sent after the restart, each once")
        assert metric_value(process.port, "retention_features_log_resets_total") >= 1
    finally:
        process.stop()
        broker.stop()
    assert "the broker lost this partition's log" in (tmp_path / "features.log").read_text()


def test_an_error_outside_any_batch_does_not_end_consuming(
    kafka: EmbeddedBroker, stream: OrderStream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consuming task survives what it did not expect (here its first look at the partitions
    fails, as a broker gone mid-rebuild makes it): it logs, waits and goes on."""
    settings = fresh_settings(kafka.bootstrap)
    topics = Topics.with_prefix(settings.topic_prefix)
    observe = TransactionsConsumer._observe
    failures = {"left": 1}

    async def failing_once(self: TransactionsConsumer) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the broker went away")
        await observe(self)

    monkeypatch.setattr(TransactionsConsumer, "_observe", failing_once)
    asyncio.run(publish(settings, topics.transactions, stream.records))
    customers = {k for k, _ in stream.records}
    asyncio.run(
        run_in_process(settings, tmp_path / "data", lambda: set(vectors_of(settings)) >= customers)
    )
    assert failures["left"] == 0
