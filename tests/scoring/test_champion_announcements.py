"""Champions: a repeated announcement of the version serving (or loading) changes nothing.

The trainer announces its champions again when `model-events` lost them; scoring must not reload
the bundle, rescore the tenant or drop what it serves for that.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from retention_scoring.champions import Champions, LoadedChampion
from retention_shared.events import ModelPublished, TimeWindow

WINDOW = TimeWindow(start=datetime(2010, 12, 1, tzinfo=UTC), end=datetime(2011, 12, 9, tzinfo=UTC))


def _published(version: str) -> ModelPublished:
    return ModelPublished(
        tenant_id="acme",
        model_tag=f"retention-acme:{version}",
        model_version=version,
        run_id=f"run-{version}",
        training_window=WINDOW,
    )


def test_a_repeated_announcement_neither_reloads_nor_swaps() -> None:
    async def scenario() -> tuple[list[str], list[str], str]:
        loads: list[str] = []
        swaps: list[str] = []
        release = asyncio.Event()

        async def load(tag: str) -> tuple[object, datetime]:
            loads.append(tag)
            await release.wait()
            return object(), datetime.now(UTC)

        async def swapped(champion: LoadedChampion) -> None:
            swaps.append(champion.version)

        champions = Champions(load=load, on_swap=[swapped])  # type: ignore[arg-type]
        champions.announce(_published("v1"))
        await asyncio.sleep(0)
        champions.announce(_published("v1"))  # while loading
        release.set()
        for _ in range(20):
            await asyncio.sleep(0)
        champions.announce(_published("v1"))  # while serving
        for _ in range(20):
            await asyncio.sleep(0)
        champions.announce(_published("v2"))  # a new version still loads
        for _ in range(20):
            await asyncio.sleep(0)
        champion = champions.get("acme")
        await champions.stop()
        assert champion is not None
        return loads, swaps, champion.version

    loads, swaps, serving = asyncio.run(scenario())
    assert loads == ["retention-acme:v1", "retention-acme:v2"]
    assert swaps == ["v1", "v2"]
    assert serving == "v2"
