"""The previous champion: kept when swapped out, remembered from `model-events`, loaded lazily."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from retention_scoring import previous_champions
from retention_scoring.champions import Champions
from retention_scoring.consumers.model_events import ModelEventsConsumer
from retention_shared.events import ModelPublished, TimeWindow
from retention_shared.kafka.message_counts import MessageCounts

WINDOW = TimeWindow(start=datetime(2010, 12, 1, tzinfo=UTC), end=datetime(2011, 12, 9, tzinfo=UTC))


def _published(version: str) -> ModelPublished:
    return ModelPublished(
        tenant_id="acme",
        model_tag=f"retention-acme:{version}",
        model_version=version,
        run_id=f"run-{version}",
        training_window=WINDOW,
    )


async def _settle() -> None:
    """Let loads and swaps in flight finish."""
    for _ in range(20):
        await asyncio.sleep(0)


class Loads:
    """A fake model store: records each tag loaded; tags in `broken` fail."""

    def __init__(self, broken: set[str] | None = None) -> None:
        self.tags: list[str] = []
        self.broken = broken or set()

    async def __call__(self, tag: str) -> tuple[object, datetime]:
        self.tags.append(tag)
        await asyncio.sleep(0)
        if tag in self.broken:
            raise OSError(f"{tag} is not in the store")
        return object(), datetime.now(UTC)


def test_a_swapped_out_champion_is_the_previous_one_without_a_reload() -> None:
    async def scenario() -> None:
        loads = Loads()
        champions = Champions(load=loads)  # type: ignore[arg-type]
        assert await champions.previous.get("acme") is None
        champions.announce(_published("v1"))
        await _settle()
        first = champions.get("acme")
        assert champions.previous.version("acme") is None
        champions.announce(_published("v2"))
        await _settle()
        assert champions.previous.version("acme") == "v1"
        assert await champions.previous.get("acme") is first
        champions.announce(_published("v1"))  # a roll-back: v2 is the previous one now
        await _settle()
        previous = await champions.previous.get("acme")
        assert previous is not None and previous.version == "v2"
        assert loads.tags == ["retention-acme:v1", "retention-acme:v2", "retention-acme:v1"]
        await champions.stop()

    asyncio.run(scenario())


def test_a_remembered_previous_champion_loads_once_on_first_use() -> None:
    async def scenario() -> None:
        loads = Loads()
        champions = Champions(load=loads)  # type: ignore[arg-type]
        champions.previous.remember(_published("v1"))
        assert loads.tags == []  # nothing loaded until asked
        both = await asyncio.gather(champions.previous.get("acme"), champions.previous.get("acme"))
        assert both[0] is both[1] and both[0] is not None and both[0].version == "v1"
        assert await champions.previous.get("acme") is both[0]
        assert loads.tags == ["retention-acme:v1"]
        await champions.stop()

    asyncio.run(scenario())


def test_a_previous_bundle_that_cannot_load_says_why_and_waits_before_trying_again(
    monkeypatch,
) -> None:
    async def scenario() -> None:
        loads = Loads(broken={"retention-acme:v1"})
        champions = Champions(load=loads)  # type: ignore[arg-type]
        champions.previous.remember(_published("v1"))
        assert await champions.previous.get("acme") is None
        assert "could not be loaded" in champions.previous.problems["acme"]
        assert await champions.previous.get("acme") is None
        assert loads.tags == ["retention-acme:v1"]  # not again within RETRY_SECONDS
        monkeypatch.setattr(previous_champions, "RETRY_SECONDS", 0.0)
        loads.broken.clear()
        champions.previous._retry_at.clear()
        found = await champions.previous.get("acme")
        assert found is not None and "acme" not in champions.previous.problems
        await champions.stop()

    asyncio.run(scenario())


def _record(offset: int, version: str) -> ConsumerRecord:
    value = _published(version).to_bytes()
    return ConsumerRecord("model-events", 0, offset, 0, 0, b"acme", value, None, 0, 0, [])


def test_catching_up_remembers_the_last_other_version_as_the_previous_champion() -> None:
    async def scenario(versions: list[str]) -> tuple[str | None, list[str]]:
        loads = Loads()
        champions = Champions(load=loads)  # type: ignore[arg-type]
        consumer = ModelEventsConsumer(champions, MessageCounts("scoring"))
        await consumer.handle([_record(i, v) for i, v in enumerate(versions)])
        await consumer.start_serving()
        await _settle()
        version = champions.previous.version("acme")
        await champions.stop()
        return version, loads.tags

    # A repeated announcement (the trainer re-announcing its champion) is not a new model.
    assert asyncio.run(scenario(["v1", "v2", "v2"])) == ("v1", ["retention-acme:v2"])
    assert asyncio.run(scenario(["v1", "v2", "v1"])) == ("v2", ["retention-acme:v1"])
    assert asyncio.run(scenario(["v1"])) == (None, ["retention-acme:v1"])
