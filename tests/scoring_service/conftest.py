"""Fixtures of the scoring service tests: one real trained bundle per session, a broker prefix per module."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.kafka import ensure_topics
from retention_trainer.bundle import ModelBundle
from tests.scoring_service.support import train_bundle


@pytest.fixture(scope="session")
def bundle() -> ModelBundle:
    return train_bundle()


def module_settings(kafka: EmbeddedBroker, directory: Path) -> Settings:
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"s{uuid.uuid4().hex[:8]}.",
        data_dir=directory / "data",
        api_keys="",
    )
    asyncio.run(ensure_topics(settings))
    return settings
