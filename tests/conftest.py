"""Session-wide fixtures: one real Tansu broker over TCP for every test that needs Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedBroker]:
    """The embedded broker, started once; tests isolate themselves with a topic prefix."""
    with EmbeddedBroker(Settings()) as broker:
        yield broker


def isolated_settings(kafka: EmbeddedBroker, data_dir: Path) -> Settings:
    """Settings pointing at the session broker, with topics of a fresh prefix of their own."""
    import asyncio

    from retention_shared.kafka.clients import ensure_topics

    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        data_dir=data_dir,
        api_keys="",
    )
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture
def kafka_settings(kafka: EmbeddedBroker, tmp_path: Path) -> Settings:
    """Settings pointing at the session broker, with topics of this test's own prefix created."""
    return isolated_settings(kafka, tmp_path / "data")
