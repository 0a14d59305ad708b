"""The kit's FastStream `subscriber` on the real broker: a record its handler keeps failing on goes to
`transactions.rejected` as poison and the records after it are handled; a transient failure is
retried until it passes and never dead-lettered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from faststream.kafka import KafkaMessage

from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import RejectedRecord, decode_event
from retention_shared.kafka.dead_letters import TransientFailure
from retention_shared.kafka.subscribers import subscriber
from retention_shared.service import ServiceContext
from tests.support.broker import isolated_settings
from tests.support.features_service import read_to_end
from tests.support.real_orders import publish

pytestmark = pytest.mark.slow


def test_a_record_that_keeps_failing_is_dead_lettered_and_a_transient_failure_is_retried(
    kafka: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path).model_copy(update={"poison_max_attempts": 3})
    ctx = ServiceContext.create("trainer", settings)
    seen: list[str] = []
    attempts = {"bad": 0, "flaky": 0}

    @subscriber(ctx, "retrain-requests", group_id="dead-lettering-test")
    async def handle(body: bytes, message: KafkaMessage) -> None:
        name = json.loads(body)["name"]
        if name in attempts:
            attempts[name] += 1
            if name == "bad":
                raise ValueError("this record breaks the handler")
            if attempts[name] <= 5:  # more than poison_max_attempts: still never poison
                raise TransientFailure("the store is down")
        seen.append(name)

    records = [(b"k", json.dumps({"name": n}).encode()) for n in ("a", "bad", "flaky", "b")]

    async def scenario() -> None:
        await publish(settings, ctx.topics.retrain_requests, records)
        await ctx.broker.start()
        try:
            async with asyncio.timeout(60):
                while seen != ["a", "flaky", "b"]:
                    await asyncio.sleep(0.2)
        finally:
            await ctx.broker.stop()

    asyncio.run(scenario())
    assert attempts == {"bad": 3, "flaky": 6}
    rejected = asyncio.run(read_to_end(settings, ctx.topics.transactions_rejected))
    (poison,) = [decode_event(RejectedRecord, r.value) for r in rejected]
    assert poison.record == {"name": "bad"} and poison.reasons[0].code == "poison"
    assert "ValueError: this record breaks the handler" in poison.reasons[0].message
