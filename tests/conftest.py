"""Session-wide fixtures: one real Tansu broker over TCP for every test that needs Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.broker import isolated_settings


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedBroker]:
    """The embedded broker, started once; tests isolate themselves with a topic prefix."""
    with EmbeddedBroker(Settings()) as broker:
        yield broker


@pytest.fixture
def kafka_settings(kafka: EmbeddedBroker, tmp_path: Path) -> Settings:
    """Settings pointing at the session broker, with topics of this test's own prefix created."""
    return isolated_settings(kafka, tmp_path / "data")
