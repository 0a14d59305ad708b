"""A large score pass on the real broker: bounded chunks, each acknowledged, a failed one sent again.

The population is four copies of the UCI slice (customer ids shifted per copy, as
`bench/scale/copies.py` does), about 1,500 customers, published in chunks of 100. One chunk's
records reach the broker but its acknowledgement is lost; another chunk times out before
anything is sent. Every customer must be announced and counted exactly once
(`retention_messages_total`, what `bench/scale` stamps `scored` on); the chunk whose
acknowledgement was lost is on the topic twice with the same event ids, and nothing else is.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import polars as pl
import pytest
from prometheus_client import REGISTRY

from retention_bundle.bundle import ModelBundle
from retention_scoring.champions import LoadedChampion
from retention_scoring.population import Population, compute_population, snapshot
from retention_scoring.publishers.customer_scores import CustomerScoresPublisher
from retention_scoring.score_events import ScoreEvents
from retention_scoring.store import FeatureStore
from retention_shared.config import Settings
from retention_shared.events import CustomerScore, decode_event
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.service import ServiceContext
from retention_shared.topics import Topics
from tests.support.kafka_reading import read_until
from tests.support.scoring_service import feature_events, model_published
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

COPIES = 4
CUSTOMER_STRIDE = 100_000  # as bench/scale/copies.py: larger than any UCI customer id
CHUNK = 100
ACK_LOST_CHUNK = 2  # 0-based: sent, then reported failed
TIMED_OUT_CHUNK = 5  # fails before anything is sent


class FailingChunks:
    """Sends for real, except: chunk `ACK_LOST_CHUNK` is written and then reported failed once;
    chunk `TIMED_OUT_CHUNK` times out once without being written."""

    def __init__(self, producer: BulkProducer) -> None:
        self.producer = producer
        self.calls: list[int] = []
        self.attempts = Counter[int]()
        self.chunk = -1
        self._last: list[tuple[bytes | None, bytes | None]] | None = None

    async def send_all(self, topic: str, records: list) -> int:
        records = list(records)
        if records != self._last:
            self.chunk += 1
            self._last = records
        self.calls.append(len(records))
        self.attempts[self.chunk] += 1
        first_try = self.attempts[self.chunk] == 1
        if self.chunk == TIMED_OUT_CHUNK and first_try:
            raise TimeoutError("no acknowledgement in time")
        sent = await self.producer.send_all(topic, records)
        if self.chunk == ACK_LOST_CHUNK and first_try:
            raise TimeoutError("the records were written; the acknowledgement was lost")
        return sent


class OnePopulation:
    def __init__(self, current: Population) -> None:
        self.current = current

    async def population(self, tenant_id: str) -> Population | None:
        return self.current


def _copies() -> pl.DataFrame:
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="acme")
    return pl.concat(
        orders.with_columns(
            customer_id=(pl.col("customer_id").cast(pl.Int64) + copy * CUSTOMER_STRIDE).cast(
                pl.String
            )
        )
        for copy in range(COPIES)
    )


def _population(bundle: ModelBundle) -> Population:
    store = FeatureStore()
    store.apply((event, 0) for event in feature_events(_copies()))
    table = store.table("acme")
    assert table is not None
    now = datetime.now(UTC)
    tag = "retention-acme:v1"
    champion = LoadedChampion("acme", tag, "v1", bundle, model_published("acme", tag), now, now)
    return compute_population(champion, snapshot(table, champion, table.clock_us))


async def test_a_large_pass_goes_out_in_acknowledged_chunks_once_each(
    kafka_settings: Settings, bundle: ModelBundle
) -> None:
    settings = kafka_settings
    topic = Topics.with_prefix(settings.topic_prefix).customer_scores
    population = _population(bundle)
    customers = len(population)
    assert customers > 10 * CHUNK
    labels = {"service": "scoring", "topic": topic, "direction": "published", "outcome": "ok"}

    def published() -> float:
        return REGISTRY.get_sample_value("retention_messages_total", labels) or 0.0

    before = published()
    producer = BulkProducer(settings)
    await producer.start()
    try:
        sender = FailingChunks(producer)
        publisher = CustomerScoresPublisher(ServiceContext.create("scoring", settings), sender)  # type: ignore[arg-type]
        events = ScoreEvents(
            OnePopulation(population),  # type: ignore[arg-type]
            publisher,
            ready=lambda: True,
            chunk_size=CHUNK,
        )
        count = await asyncio.wait_for(events.rescore("acme"), timeout=120)

        assert count == customers
        assert published() - before == customers  # counted once each
        assert set(events.published["acme"]) == set(population.scores["customer_id"].to_list())
        # Bounded: never more than a chunk at once; the two failed chunks went twice.
        assert max(sender.calls) == CHUNK
        assert sender.chunk == (customers - 1) // CHUNK
        assert {c for c, n in sender.attempts.items() if n > 1} == {
            ACK_LOST_CHUNK,
            TIMED_OUT_CHUNK,
        }

        records = await read_until(
            settings, topic, lambda r: len(r) >= customers + CHUNK, timeout=90
        )
        by_customer: dict[str, list[CustomerScore]] = {}
        for record in records:
            event = decode_event(CustomerScore, record.value)
            by_customer.setdefault(event.customer_id, []).append(event)
        assert len(by_customer) == customers
        twice = {c: e for c, e in by_customer.items() if len(e) > 1}
        assert len(twice) == CHUNK  # the chunk whose acknowledgement was lost, nothing else
        assert all(len(e) == 2 and e[0] == e[1] for e in twice.values())
        assert len(records) == customers + CHUNK

        # Read back, nothing is left to announce.
        assert await events.rescore("acme") == 0
    finally:
        await producer.stop()
