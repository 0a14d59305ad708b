"""Champions survive a restart of everything: trainer and scoring as processes on the real broker.

The data directory (the trainer's run store) and the BentoML store hold a champion, as a
published run leaves them; the broker's topics are new and empty, as after a restart of the
in-memory embedded broker. Scoring must serve the champion again without any new training, and
the trainer must not announce it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from retention_bundle.bundle import ModelBundle
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import ModelEvent, ModelPublished, decode_event
from retention_shared.topics import Topics
from tests.support.broker import isolated_settings
from tests.support.champion_store import store_champion
from tests.support.kafka_reading import read_until
from tests.support.scoring_service import (
    announce,
    feature_events,
    model_published,
    publish_features,
    recalibrated,
    store_bundle,
    train_bundle,
    wait_for,
)
from tests.support.stack import auth, running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

TENANT = "default"  # the stack's admin key belongs to it


@dataclass
class Stored:
    settings: Settings
    home: Path
    tag: str
    other_tag: str
    work: Path


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return train_bundle()


@pytest.fixture(scope="module")
def stored(
    kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory, bundle: ModelBundle
) -> Stored:
    """A data directory and model store after a published run (and one more stored model)."""
    work = tmp_path_factory.mktemp("reannounce")
    settings = isolated_settings(kafka, work / "data")
    home = work / "bentoml"
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant=TENANT)
    tag = store_champion(settings, home, work, bundle, TENANT, orders)
    other_tag = store_bundle(recalibrated(bundle, 0.5), home, work)
    asyncio.run(publish_features(settings, feature_events(orders)))
    return Stored(settings, home, tag, other_tag, work)


def _published(settings: Settings, at_least: int) -> list[ModelPublished]:
    topic = Topics.with_prefix(settings.topic_prefix).model_events
    records = asyncio.run(
        read_until(settings, topic, lambda found: len(found) >= at_least, timeout=30)
    )
    events = [decode_event(ModelEvent, r.value) for r in records]
    return [e for e in events if isinstance(e, ModelPublished)]


def _serving(base: str, client: httpx.Client) -> str | None:
    card = client.get(f"{base}/v1/model", headers=auth())
    return card.json()["model_version"] if card.status_code == 200 else None


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def _stack(stored: Stored, name: str):
    return running_stack(
        stored.settings,
        stored.work / f"{name}.log",
        services=("trainer", "scoring"),
        BENTOML_HOME=str(stored.home),
        RETENTION_RETRAIN_EVERY_HOURS="0",
    )


def test_scoring_serves_the_stored_champion_on_empty_topics_and_it_is_announced_once(
    stored: Stored, client: httpx.Client
) -> None:
    version = stored.tag.split(":", 1)[1]
    with _stack(stored, "first") as stack:
        base = url(stack, "scoring")
        wait_for(lambda: _serving(base, client) == version, what="scoring serves the champion")
        card = client.get(f"{base}/v1/model", headers=auth()).json()
        # The announcement the promotion made, not a new one: same run and champion-since.
        assert card["champion_since"].startswith("2026-01-02T03:04:05")
        customer = load_orders(TEST_DATA / "online_retail_slice.parquet")["customer_id"][0]
        wait_for(
            lambda: (
                client.get(f"{base}/v1/customers/{customer}/score", headers=auth()).status_code
                == 200
            ),
            what="a customer scored",
        )
    first = _published(stored.settings, at_least=1)
    assert [(e.tenant_id, e.model_tag, e.run_id) for e in first] == [
        (TENANT, stored.tag, "run-before-the-restart")
    ]

    with _stack(stored, "second") as stack:  # model-events names the champion: nothing to add
        wait_for(lambda: _serving(url(stack, "scoring"), client) == version, what="serving")
    assert len(_published(stored.settings, at_least=1)) == 1


def test_a_champion_that_model_events_does_not_name_last_is_announced_again(
    stored: Stored, client: httpx.Client
) -> None:
    # Another model announced after the champion (a foreign producer, a lost store update):
    # the trainer's champion is not what model-events names, so the trainer announces it again.
    asyncio.run(announce(stored.settings, model_published(TENANT, stored.other_tag)))
    before = len(_published(stored.settings, at_least=1))
    version = stored.tag.split(":", 1)[1]
    with _stack(stored, "third") as stack:
        wait_for(lambda: _serving(url(stack, "scoring"), client) == version, what="serving")
    published = _published(stored.settings, at_least=before + 1)
    assert [e.model_tag for e in published[-2:]] == [stored.other_tag, stored.tag]
