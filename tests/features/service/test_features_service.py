"""The features service on the real broker: parity with the offline definition, crash safety,
rebuild of a lost partition, and scale-out — all on the whole cleaned online_retail.parquet."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.features import FEATURE_NAMES, compute_features
from retention_shared.kafka.clients import ensure_topics
from retention_shared.topics import Topics
from tests.support.features_service import (
    FeaturesProcess,
    assert_same_vectors,
    last_vectors,
    read_to_end,
    stored_orders,
    wait_caught_up,
)
from tests.support.real_orders import ONLINE_RETAIL, OrderStream, order_stream, publish

pytestmark = pytest.mark.slow
PARTITIONS = 6


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> OrderStream:
    return order_stream(ONLINE_RETAIL, tmp_path_factory.mktemp("ingest"))


def fresh_topics(kafka: EmbeddedBroker) -> Settings:
    settings = Settings(kafka_bootstrap=kafka.bootstrap, topic_prefix=f"f{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(settings))
    return settings


@dataclass
class Outcome:
    settings: Settings
    data_dirs: list[Path]
    vectors: dict[bytes, dict]
    state: pl.DataFrame


def outcome(settings: Settings, data_dirs: list[Path]) -> Outcome:
    topic = Topics.with_prefix(settings.topic_prefix).customer_features
    vectors = last_vectors(asyncio.run(read_to_end(settings, topic)))
    return Outcome(settings, data_dirs, vectors, stored_orders(data_dirs))


@pytest.fixture(scope="module")
def uninterrupted(
    kafka: EmbeddedBroker, stream: OrderStream, tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    """The reference: the whole stream consumed by one instance that never stops."""
    settings = fresh_topics(kafka)
    asyncio.run(
        publish(settings, Topics.with_prefix(settings.topic_prefix).transactions, stream.records)
    )
    work = tmp_path_factory.mktemp("uninterrupted")
    process = FeaturesProcess(settings, work / "data", work / "features.log").start()
    try:
        wait_caught_up([process], PARTITIONS)
    finally:
        process.stop()
    return outcome(settings, [work / "data"])


def test_every_customer_matches_the_offline_definition(
    uninterrupted: Outcome, stream: OrderStream
) -> None:
    customers = stream.orders.select("tenant_id", "customer_id").unique().height
    assert len(uninterrupted.vectors) == customers > 4000
    clocks = pl.DataFrame(
        [(v["tenant_id"], v["customer_id"], v["as_of"]) for v in uninterrupted.vectors.values()],
        schema={
            "tenant_id": pl.String,
            "customer_id": pl.String,
            "as_of": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    offline = compute_features(stream.orders, clocks)
    assert offline.height == customers
    worst = 0.0
    for row in offline.iter_rows(named=True):
        online = uninterrupted.vectors[f"{row['tenant_id']}:{row['customer_id']}".encode()]
        for name in FEATURE_NAMES:
            worst = max(worst, abs(online["features"][name] - row[name]))
    assert worst <= 1e-9
    # Nothing lost, nothing counted twice: the state holds exactly the stream's orders.
    assert uninterrupted.state.height == stream.orders.height
    assert uninterrupted.state.get_column("total").sum() == pytest.approx(
        stream.orders.get_column("total").sum()
    )


def test_sigkill_three_times_during_replay_ends_identical(
    kafka: EmbeddedBroker, stream: OrderStream, uninterrupted: Outcome, tmp_path: Path
) -> None:
    settings = fresh_topics(kafka)
    asyncio.run(
        publish(settings, Topics.with_prefix(settings.topic_prefix).transactions, stream.records)
    )
    rng = random.Random(20111209)
    kills = 0
    # Small batches make many state transactions, so kills land between and inside them.
    process = FeaturesProcess(settings, tmp_path / "data", tmp_path / "features.log", max_batch=200)
    process.start()
    try:
        while kills < 3:
            # Kill only once it has made progress (its join takes a few seconds on Tansu).
            deadline = time.monotonic() + 60
            while not process.lags() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.2, 1.5))
            process.kill()
            kills += 1
            process.start()
        wait_caught_up([process], PARTITIONS)
    finally:
        process.stop()
    interrupted = outcome(settings, [tmp_path / "data"])
    assert interrupted.state.equals(uninterrupted.state)
    assert_same_vectors(interrupted.vectors, uninterrupted.vectors)


def test_a_lost_partition_state_file_is_rebuilt_to_the_same_result(
    uninterrupted: Outcome, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(uninterrupted.data_dirs[0], data)
    lost = sorted((data / "features").glob("*-0.sqlite"))
    assert len(lost) == 1
    for path in (data / "features").glob(f"{lost[0].name}*"):
        path.unlink()  # the database and its WAL/SHM files
    process = FeaturesProcess(uninterrupted.settings, data, tmp_path / "features.log").start()
    try:
        wait_caught_up([process], PARTITIONS)
    finally:
        process.stop()
    assert "rebuilding partition from the beginning" in (tmp_path / "features.log").read_text()
    rebuilt = outcome(uninterrupted.settings, [data])
    assert rebuilt.state.equals(uninterrupted.state)
    assert_same_vectors(rebuilt.vectors, uninterrupted.vectors)


def test_two_instances_split_the_partitions_and_one_takes_over(
    kafka: EmbeddedBroker, stream: OrderStream, uninterrupted: Outcome, tmp_path: Path
) -> None:
    settings = fresh_topics(kafka)
    transactions = Topics.with_prefix(settings.topic_prefix).transactions
    half = len(stream.records) // 2
    asyncio.run(publish(settings, transactions, stream.records[:half]))
    first = FeaturesProcess(settings, tmp_path / "a", tmp_path / "a.log").start()
    second = FeaturesProcess(settings, tmp_path / "b", tmp_path / "b.log").start()
    try:
        wait_caught_up([first, second], PARTITIONS)
        owned = [set(first.lags()), set(second.lags())]
        assert owned[0] and owned[1] and not owned[0] & owned[1]
        second.stop()
        asyncio.run(publish(settings, transactions, stream.records[half:]))
        wait_caught_up([first], PARTITIONS)
    finally:
        first.stop()
        second.stop()
    # The survivor rebuilt the partitions it took over (it had no state for them).
    assert "rebuilding partition from the beginning" in (tmp_path / "a.log").read_text()
    scaled = outcome(settings, [tmp_path / "a"])
    assert scaled.state.equals(uninterrupted.state)
    assert_same_vectors(scaled.vectors, uninterrupted.vectors)
