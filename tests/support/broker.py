"""Settings on the session's broker (the `kafka` fixture) with topics of a fresh prefix."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.kafka.clients import ensure_topics


def isolated_settings(kafka: EmbeddedBroker, data_dir: Path) -> Settings:
    """Settings pointing at the session broker, with topics of a fresh prefix of their own."""
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        data_dir=data_dir,
        api_keys="",
    )
    asyncio.run(ensure_topics(settings))
    return settings
