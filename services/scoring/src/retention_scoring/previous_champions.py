"""The champion before the current one, per tenant: what insights compare today's numbers with.

Scoring serves only the current champion. The one it replaced is known in two ways: swapped out
while this instance runs (its bundle is still in memory, so the reference is kept), or, after a
restart, the announcement before the last distinct one on `model-events` (remembered while
catching up, and loaded from the model store only when a request first needs it). A bundle
that cannot be loaded is tried again after `RETRY_SECONDS`; until then the previous values are
null and `problems` says why. After the broker lost `model-events` (the trainer announces only
the current champion again) there is no previous champion until the next swap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from retention_shared.events import ModelPublished
from retention_shared.tasks import cancel

if TYPE_CHECKING:  # champions.py holds a PreviousChampions
    from retention_scoring.champions import LoadedChampion

__all__ = ["PreviousChampions"]

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0

# Reads an announced bundle (in a worker thread) and makes it a LoadedChampion.
Loader = Callable[[ModelPublished], Awaitable["LoadedChampion"]]


@dataclass
class PreviousChampions:
    load: Loader
    # The previous champion's announcement per tenant, and its bundle once loaded.
    announced: dict[str, ModelPublished] = field(default_factory=dict)
    loaded: dict[str, LoadedChampion] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    _loading: dict[str, asyncio.Task[LoadedChampion | None]] = field(default_factory=dict)
    _retry_at: dict[str, float] = field(default_factory=dict)

    def version(self, tenant_id: str) -> str | None:
        event = self.announced.get(tenant_id)
        return event.model_version if event is not None else None

    def replaced(self, old: LoadedChampion) -> None:
        """`old` stopped serving: it is the previous champion now, already loaded."""
        self._forget(old.tenant_id)
        self.announced[old.tenant_id] = old.published
        self.loaded[old.tenant_id] = old

    def remember(self, event: ModelPublished) -> None:
        """The announcement before the current one (read while catching up): loaded lazily."""
        if self.version(event.tenant_id) == event.model_version:
            return
        self._forget(event.tenant_id)
        self.announced[event.tenant_id] = event

    async def get(self, tenant_id: str) -> LoadedChampion | None:
        """The previous `LoadedChampion` of a tenant, loading it on first use; None when the tenant
        has none or its bundle cannot be loaded (see `problems`)."""
        event = self.announced.get(tenant_id)
        if event is None:
            return None
        if (found := self.loaded.get(tenant_id)) is not None:
            return found
        if time.monotonic() < self._retry_at.get(tenant_id, 0.0):
            return None
        task = self._loading.get(tenant_id)
        if task is None:
            task = self._loading[tenant_id] = asyncio.create_task(self._load(event))
        try:
            # Shielded: a request that goes away does not cancel a load others wait for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # superseded by a newer previous champion while loading
                return None
            raise

    async def _load(self, event: ModelPublished) -> LoadedChampion | None:
        tenant_id = event.tenant_id
        try:
            champion = await self.load(event)
        except Exception as exc:
            self._loading.pop(tenant_id, None)
            self._retry_at[tenant_id] = time.monotonic() + RETRY_SECONDS
            self.problems[tenant_id] = (
                f"previous model {event.model_tag} could not be loaded ({exc})"
            )
            log.warning(
                "could not load the previous champion",
                extra={"tenant_id": tenant_id, "tag": event.model_tag, "error": str(exc)},
            )
            return None
        self._loading.pop(tenant_id, None)
        if self.announced.get(tenant_id) is not event:
            return None  # superseded while loading
        self.loaded[tenant_id] = champion
        self.problems.pop(tenant_id, None)
        return champion

    def _forget(self, tenant_id: str) -> None:
        task = self._loading.pop(tenant_id, None)
        if task is not None:
            task.cancel()
        self.loaded.pop(tenant_id, None)
        self.problems.pop(tenant_id, None)
        self._retry_at.pop(tenant_id, None)

    async def stop(self) -> None:
        await cancel(list(self._loading.values()))
