"""`CustomerScore.event_id` on the real broker: a re-published announcement keeps its id.

Scoring's publisher (`ScoreEvents`) runs against the session broker with a real trained bundle.
Its first send reaches the broker but reports a failure (an acknowledgement lost to a crash or a
timeout), so the retry publishes the same changes again: the duplicates must carry the ids of
the first records, and nothing else may differ but `scored_at`. An instance that read the topic
back announces nothing again; a new model's announcements get new ids.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from retention_bundle.bundle import ModelBundle
from retention_scoring.champions import LoadedChampion
from retention_scoring.population import Population, compute_population, snapshot
from retention_scoring.publishers.customer_scores import CustomerScoresPublisher
from retention_scoring.score_events import ScoreEvents
from retention_scoring.store import FeatureStore
from retention_shared.config import Settings
from retention_shared.events import CustomerScore, decode_event, score_event_id
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.service import ServiceContext
from retention_shared.topics import Topics, customer_key
from tests.support.features_service import read_to_end
from tests.support.kafka_reading import read_until
from tests.support.scoring_service import feature_events, model_published, recalibrated
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

CUSTOMERS = 40


class LostAcknowledgement(Exception):
    pass


class AcknowledgementLostOnce:
    """Sends for real; the first batch then reports a failure as if the broker never answered."""

    def __init__(self, producer: BulkProducer) -> None:
        self.producer = producer
        self.failed = False

    async def send_all(self, topic: str, records: list) -> int:
        sent = await self.producer.send_all(topic, records)
        if not self.failed:
            self.failed = True
            raise LostAcknowledgement("the records were written; the acknowledgement was lost")
        return sent


class OnePopulation:
    """What `ScoreEvents` asks of `ScoringState`: the tenant's scored population."""

    def __init__(self, current: Population) -> None:
        self.current = current

    async def population(self, tenant_id: str) -> Population | None:
        return self.current if tenant_id == self.current.champion.tenant_id else None


def _population(bundle: ModelBundle, version: str) -> Population:
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="acme")
    first = orders["customer_id"].unique().sort().head(CUSTOMERS)
    store = FeatureStore()
    store.apply(
        (event, 0) for event in feature_events(orders.filter(pl.col("customer_id").is_in(first)))
    )
    table = store.table("acme")
    now = datetime.now(UTC)
    tag = f"retention-acme:{version}"
    champion = LoadedChampion("acme", tag, version, bundle, model_published("acme", tag), now, now)
    return compute_population(champion, snapshot(table, champion, table.clock_us))


def _events(settings: Settings, population: Population, producer: object) -> ScoreEvents:
    publisher = CustomerScoresPublisher(ServiceContext.create("scoring", settings), producer)  # type: ignore[arg-type]
    return ScoreEvents(OnePopulation(population), publisher, ready=lambda: True)  # type: ignore[arg-type]


def _by_customer(records: list) -> dict[str, list[CustomerScore]]:
    found: dict[str, list[CustomerScore]] = {}
    for record in records:
        event = decode_event(CustomerScore, record.value)
        found.setdefault(event.customer_id, []).append(event)
    return found


async def test_a_republished_score_change_keeps_its_event_id(
    kafka_settings: Settings, bundle: ModelBundle
) -> None:
    settings = kafka_settings
    topic = Topics.with_prefix(settings.topic_prefix).customer_scores
    population = _population(bundle, "v1")
    producer = BulkProducer(settings)
    await producer.start()
    try:
        first = _events(settings, population, AcknowledgementLostOnce(producer))
        first.mark("acme")  # the drain fails once, waits a second and publishes again
        records = await read_until(settings, topic, lambda r: len(r) >= 2 * CUSTOMERS, timeout=60)
        await first.stop()
        # The pass explained every customer and kept none of it; a request's reasons are kept.
        ids = population.scores["customer_id"].to_list()
        assert all(population.cached_explanation(c) is None for c in ids)
        positions = np.arange(len(population))
        passed = population.explanations(positions, keep=False)
        kept = population.explanations(positions)
        assert kept == passed
        assert [population.cached_explanation(c) for c in ids] == kept

        published = _by_customer(records)
        assert len(published) == CUSTOMERS
        for customer_id, (once, again) in published.items():
            assert once.event_id == again.event_id, customer_id
            assert once.model_copy(update={"scored_at": again.scored_at}) == again
            assert once.event_id == score_event_id(
                "acme",
                customer_id,
                "v1",
                once.features_as_of,
                None,
                (once.risk_band.value, once.value_tier.value, once.segment),
            )
        assert len({events[0].event_id for events in published.values()}) == CUSTOMERS
        assert {r.key for r in records} == {customer_key("acme", c) for c in published}

        # A restarted instance reads the topic back first: nothing is announced again.
        restarted = _events(settings, population, producer)
        await restarted.read_back(await read_to_end(settings, topic))
        assert await restarted.rescore("acme") == 0

        # A new model moves some customers: their announcements are new ones, with new ids.
        moved = _population(recalibrated(bundle, 1.5), "v2")
        restarted.state.current = moved  # type: ignore[attr-defined]
        count = await restarted.rescore("acme")
        assert count > 0, "the recalibrated model moves some risk bands"
        after = await read_until(
            settings, topic, lambda r: len(r) >= 2 * CUSTOMERS + count, timeout=30
        )
        newer = [
            e for events in _by_customer(after).values() for e in events if e.model_version == "v2"
        ]
        assert len(newer) == count
        earlier = {e.event_id for events in published.values() for e in events}
        assert not earlier & {e.event_id for e in newer}
        for event in newer:
            previous = published[event.customer_id][-1]
            assert event.event_id == score_event_id(
                "acme",
                event.customer_id,
                "v2",
                event.features_as_of,
                (previous.risk_band.value, previous.value_tier.value, previous.segment),
                (event.risk_band.value, event.value_tier.value, event.segment),
            )
    finally:
        await producer.stop()
