"""Two scoring instances on the real broker announce each score change once, between them.

Both read every topic whole and answer for any customer; a consumer group on
`customer-features` splits the duty of announcing. When one instance stops, the other takes
its partitions over and announces their changes too.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import httpx
import polars as pl
import pytest

from retention_bundle.bundle import ModelBundle
from retention_scoring.scoring import score_customers
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import CustomerScore, decode_event
from retention_shared.features import compute_features
from retention_shared.topics import Topics
from tests.support.broker import isolated_settings
from tests.support.features_service import read_to_end
from tests.support.kafka_reading import read_until
from tests.support.scoring_service import (
    announce,
    feature_events,
    model_published,
    publish_features,
    recalibrated,
    store_bundle,
)
from tests.support.stack import running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

CHANGES = ("risk_band", "value_tier", "segment")


def _states(bundle: ModelBundle, orders: pl.DataFrame) -> dict[str, tuple[str, ...]]:
    scored = score_customers(bundle, compute_features(orders, orders["occurred_at"].max()))
    return {r["customer_id"]: tuple(r[c] for c in CHANGES) for r in scored.iter_rows(named=True)}


def _events(records: list, version: str) -> list[CustomerScore]:
    decoded = (decode_event(CustomerScore, r.value) for r in records)
    return [e for e in decoded if e.model_version == version]


def _events_once_settled(settings: Settings, version: str, count: int) -> list[CustomerScore]:
    """The model version's events on `customer-scores`, once there are `count` and a few seconds
    passed without more being due."""
    topic = Topics.with_prefix(settings.topic_prefix).customer_scores
    asyncio.run(
        read_until(settings, topic, lambda r: len(_events(r, version)) >= count, timeout=90)
    )
    asyncio.run(asyncio.sleep(3))  # nothing more should come
    return _events(asyncio.run(read_to_end(settings, topic)), version)


def _announced(base: str) -> float:
    """CustomerScore events this instance published (its own message counter)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    pattern = r'retention_messages_total\{[^}]*topic="[^"]*customer-scores"[^}]*\} ([0-9.e+]+)'
    return sum(float(value) for value in re.findall(pattern, text))


def test_each_change_is_announced_once_and_a_survivor_takes_over(
    kafka: EmbeddedBroker, tmp_path: Path, bundle: ModelBundle
) -> None:
    settings = isolated_settings(kafka, tmp_path / "data")
    home = tmp_path / "bentoml"
    tag_1 = store_bundle(bundle, home, tmp_path)
    second = recalibrated(bundle, 0.8)
    tag_2 = store_bundle(second, home, tmp_path)
    version_1, version_2 = tag_1.split(":")[1], tag_2.split(":")[1]
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="default")
    asyncio.run(publish_features(settings, feature_events(orders)))
    state_1, state_2 = _states(bundle, orders), _states(second, orders)
    changed = {c for c in state_2 if state_2[c] != state_1[c]}
    assert changed, "the second model moves some bands"

    with (
        running_stack(
            settings, tmp_path / "scoring-a.log", services=("scoring",), BENTOML_HOME=str(home)
        ) as staying,
        running_stack(
            settings, tmp_path / "scoring-b.log", services=("scoring",), BENTOML_HOME=str(home)
        ) as leaving,
    ):
        bases = [url(staying, "scoring"), url(leaving, "scoring")]
        asyncio.run(announce(settings, model_published("default", tag_1)))

        # Every customer's first score, each announced once, by both instances between them.
        first = _events_once_settled(settings, version_1, len(state_1))
        counts = Counter(e.customer_id for e in first)
        assert set(counts) == set(state_1)
        assert max(counts.values()) == 1, counts.most_common(3)
        shares = [_announced(base) for base in bases]
        assert sum(shares) == len(state_1) and min(shares) > 0, shares

        # One instance leaves: the other takes its partitions over and announces every change
        # of the next model, each once.
        leaving.stop()
        asyncio.run(announce(settings, model_published("default", tag_2)))
        after = _events_once_settled(settings, version_2, len(changed))
        assert sorted(e.customer_id for e in after) == sorted(changed)
        assert _announced(bases[0]) == shares[0] + len(changed)
