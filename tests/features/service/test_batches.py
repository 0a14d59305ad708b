"""One poll's work without a broker: decode, store, running totals and vectors, batch by batch.

Real ingest payloads with rejects and redeliveries mixed in, through the consumer's own
`_prepare`/`_commit`; every published vector must equal `compute_features` on the stored orders
at the vector's clock (the tenant clock, or wall time with some orders in the future, which the
running totals hand to the vectorized path).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from retention_features.consumers import transactions
from retention_features.consumers.transactions import TransactionsConsumer
from retention_features.store import PartitionStore
from retention_features.totals_cache import RunningCustomers
from retention_features.vectors import feature_payloads
from retention_shared.config import ClockMode, Settings
from retention_shared.events import CustomerFeatures, RejectedRecord, decode_event
from retention_shared.features import FEATURE_NAMES, compute_features
from retention_shared.service import ServiceContext
from tests.support.real_orders import order_stream
from tests.support.uci_orders import TEST_DATA

PARTITIONS = 2


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bytes]]:
    stream = order_stream(
        TEST_DATA / "online_retail_II_slice.parquet", tmp_path_factory.mktemp("ingest")
    )
    return stream.records


def consumer_for(tmp_path: Path, clock: ClockMode) -> TransactionsConsumer:
    ctx = ServiceContext.create("features", Settings(clock=clock, topic_prefix="batches."))
    consumer = TransactionsConsumer(ctx, state_dir=tmp_path)
    for partition in range(PARTITIONS):
        store = PartitionStore(consumer.store_path(partition))
        consumer.stores[partition] = store
        consumer.customers[partition] = RunningCustomers(store, empty=True)
    return consumer


def run_batches(
    consumer: TransactionsConsumer, payloads: list[tuple[bytes, bytes]], size: int
) -> tuple[dict[bytes, bytes], list[bytes]]:
    """Partition by key, apply in batches; the last vector per key and every reject."""
    logs: dict[int, list[ConsumerRecord]] = {p: [] for p in range(PARTITIONS)}
    for key, value in payloads:
        log = logs[sum(key) % PARTITIONS]
        log.append(ConsumerRecord("t", 0, len(log), 0, 0, key, value, None, 0, 0, []))
    vectors, rejects = {}, []
    for start in range(0, max(len(log) for log in logs.values()), size):
        work = {
            TopicPartition("t", p): log[start : start + size]
            for p, log in logs.items()
            if log[start : start + size]
        }
        batch = consumer._prepare(work)
        consumer._commit(batch)
        vectors.update(batch.features)
        rejects += [value for _, value in batch.rejects]
    return vectors, rejects


def assert_vectors_equal_the_definition(
    consumer: TransactionsConsumer, vectors: dict[bytes, bytes]
) -> None:
    history = pl.concat(store.all_history() for store in consumer.stores.values())
    decoded = [decode_event(CustomerFeatures, payload) for payload in vectors.values()]
    clocks = pl.DataFrame(
        [(v.tenant_id, v.customer_id, v.as_of) for v in decoded],
        schema={
            "tenant_id": pl.String,
            "customer_id": pl.String,
            "as_of": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    expected = {
        (row["tenant_id"], row["customer_id"]): row
        for row in compute_features(history, clocks).iter_rows(named=True)
    }
    assert len(expected) == len(decoded) > 100
    for vector in decoded:
        row = expected[(vector.tenant_id, vector.customer_id)]
        assert vector.features == {name: row[name] for name in FEATURE_NAMES}


def test_batches_with_rejects_and_redeliveries_give_the_definitions_vectors(
    records: list[tuple[bytes, bytes]], tmp_path: Path
) -> None:
    wrong_version = json.loads(records[0][1]) | {"schema_version": 2}
    bad = [(b"k:1", b"{not json"), (b"k:2", json.dumps(wrong_version).encode())]
    # Bad records among the orders, and a stretch of the log delivered again later.
    payloads = records[:300] + bad + records[300:] + records[100:400]
    consumer = consumer_for(tmp_path, ClockMode.TENANT)
    vectors, rejects = run_batches(consumer, payloads, size=97)
    reasons = [RejectedRecord.model_validate_json(r).reasons[0].code for r in rejects]
    assert sorted(reasons) == ["not_json", "unsupported_schema_version"]
    stored = pl.concat(store.all_history() for store in consumer.stores.values())
    assert stored.height == len(records)  # every order once
    assert_vectors_equal_the_definition(consumer, vectors)


def test_wall_clock_with_future_orders_uses_the_vectorized_path(
    records: list[tuple[bytes, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectorized: list[int] = []

    def counting(history: pl.DataFrame, as_of: dict, sources: dict) -> list[tuple[bytes, bytes]]:
        vectorized.append(len(as_of))
        return feature_payloads(history, as_of, sources)

    monkeypatch.setattr(transactions, "feature_payloads", counting)
    # Within the clock-skew allowance (later would be rejected as future_order_datetime).
    future = datetime.now(UTC) + timedelta(hours=12)
    moved = []
    for i, (key, value) in enumerate(records):
        event = json.loads(value)
        if i % 10 == 0:  # some customers get an order after "now"
            event["occurred_at"] = future.isoformat()
        moved.append((key, json.dumps(event).encode()))
    consumer = consumer_for(tmp_path, ClockMode.WALL)
    vectors, rejects = run_batches(consumer, moved, size=500)
    assert not rejects
    assert sum(vectorized) > 10
    assert_vectors_equal_the_definition(consumer, vectors)


def test_an_amendment_moves_an_order_and_a_customer_left_without_orders_is_tombstoned(
    records: list[tuple[bytes, bytes]], tmp_path: Path
) -> None:
    """Order O of customer A (their only order) is amended to version 1 for customer B, with
    the withdrawal ingest sends to A's partition: O ends with B only, A's vector is replaced by a
    tombstone, and every vector still equals the definition over the stored orders."""
    events = [json.loads(payload) for _, payload in records]
    counts: dict[str, int] = {}
    for event in events:
        counts[event["customer_id"]] = counts.get(event["customer_id"], 0) + 1
    moved = next(e for e in events if counts[e["customer_id"]] == 1)
    lone, other = moved["customer_id"], next(e["customer_id"] for e in events if e is not moved)
    amendment = moved | {"customer_id": other, "version": 1}
    withdrawal = moved | {"event_id": "withdrawal-1", "version": 1, "withdrawn": True}
    extra = [
        (f"{moved['tenant_id']}:{other}".encode(), json.dumps(amendment).encode()),
        (f"{moved['tenant_id']}:{lone}".encode(), json.dumps(withdrawal).encode()),
    ]
    consumer = consumer_for(tmp_path, ClockMode.TENANT)
    vectors, rejects = run_batches(consumer, records + extra, size=97)
    assert not rejects
    lone_key = f"{moved['tenant_id']}:{lone}".encode()
    assert vectors.pop(lone_key) is None  # the last word on A is a tombstone
    stored = pl.concat(store.all_history() for store in consumer.stores.values())
    kept = stored.filter(pl.col("order_id") == moved["order_id"], pl.col("kind") == moved["kind"])
    assert kept.get_column("customer_id").to_list() == [other]
    assert lone not in stored.get_column("customer_id").to_list()
    assert stored.height == len(records)
    assert_vectors_equal_the_definition(consumer, vectors)
