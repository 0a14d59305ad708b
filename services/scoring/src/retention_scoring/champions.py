"""Each tenant's champion model bundle, loaded off the event loop and swapped in atomically.

The last `ModelPublished` of a tenant on `model-events` names its champion. Loading reads the
bundle from the local BentoML store (importing it from `RETENTION_MODEL_EXPORT_URL` when the
store lacks it) in a worker thread; the new `LoadedChampion` then replaces the old one in a
single dict assignment on the event loop. A request takes one `LoadedChampion` reference at its
start and uses only it, so a request in flight finishes on the model it started with and none fails
during a swap. A bundle that cannot be loaded leaves the previous champion serving and is
retried with back-off until it loads or a newer model is announced. The champion a swap
replaces is kept as the tenant's previous one (`previous_champions.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import bentoml

from retention_bundle.bundle import ModelBundle, read_bundle
from retention_bundle.export import import_model
from retention_scoring import telemetry
from retention_scoring.previous_champions import PreviousChampions
from retention_shared.config import Settings
from retention_shared.events import ModelPublished, utc_now
from retention_shared.tasks import cancel

__all__ = ["Champions", "LoadedChampion", "fetch_bundle"]

log = logging.getLogger(__name__)

RETRY_SECONDS = (2.0, 5.0, 15.0, 60.0)


@dataclass(frozen=True)
class LoadedChampion:
    """A tenant's champion bundle read into memory and serving (the trainer keeps its own record
    of which run is champion: `retention_trainer.store.ChampionRecord`)."""

    tenant_id: str
    tag: str
    version: str
    bundle: ModelBundle
    published: ModelPublished
    trained_at: datetime
    loaded_at: datetime


def fetch_bundle(tag: str, settings: Settings) -> tuple[ModelBundle, datetime]:
    """The bundle of `tag` and when it was created (blocking: call it in a worker thread)."""
    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        if not settings.model_export_url:
            raise
        import_model(tag, settings)
        model = bentoml.models.get(tag)
    return read_bundle(Path(model.path)), model.info.creation_time


Loader = Callable[[str], Awaitable[tuple[ModelBundle, datetime]]]
SwapHook = Callable[[LoadedChampion], Awaitable[None]]


@dataclass
class Champions:
    load: Loader
    on_swap: list[SwapHook] = field(default_factory=list)
    current: dict[str, LoadedChampion] = field(default_factory=dict)
    # The latest announcement per tenant, and why it is not serving (yet), if it is not.
    announced: dict[str, ModelPublished] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    _loading: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _failures: dict[str, int] = field(default_factory=dict)
    previous: PreviousChampions = field(init=False)

    def __post_init__(self) -> None:
        self.previous = PreviousChampions(load=self._champion_of)

    async def _champion_of(self, event: ModelPublished) -> LoadedChampion:
        bundle, trained_at = await self.load(event.model_tag)
        return LoadedChampion(
            tenant_id=event.tenant_id,
            tag=event.model_tag,
            version=event.model_version,
            bundle=bundle,
            published=event,
            trained_at=trained_at,
            loaded_at=utc_now(),
        )

    def get(self, tenant_id: str) -> LoadedChampion | None:
        return self.current.get(tenant_id)

    def pending(self) -> list[str]:
        """Tenants whose latest announced model is not the one serving."""
        return sorted(
            tenant
            for tenant, event in self.announced.items()
            if (champion := self.current.get(tenant)) is None
            or champion.version != event.model_version
        )

    def announce(self, event: ModelPublished) -> None:
        """A new champion for `event.tenant_id`: load it in the background, then swap.

        The version serving or loading already is left alone: the trainer announces its
        champions again when `model-events` lost them (a broker restart), and a repeat must not
        reload the bundle or rescore the tenant.
        """
        if self._serving_or_loading(event):
            return
        self.announced[event.tenant_id] = event
        self.problems[event.tenant_id] = f"loading model {event.model_tag}"
        self._failures[event.tenant_id] = 0
        previous = self._loading.pop(event.tenant_id, None)
        if previous is not None:
            previous.cancel()  # a newer model supersedes one still loading
        self._loading[event.tenant_id] = asyncio.create_task(self._load(event))

    def _serving_or_loading(self, event: ModelPublished) -> bool:
        champion = self.current.get(event.tenant_id)
        latest = self.announced.get(event.tenant_id)
        if event.tenant_id in self._loading:
            return latest is not None and latest.model_version == event.model_version
        return champion is not None and champion.version == event.model_version

    async def _load(self, event: ModelPublished) -> None:
        attempt = 0
        while True:
            try:
                bundle, trained_at = await self.load(event.model_tag)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                attempt += 1
                self._failures[event.tenant_id] = attempt
                self.problems[event.tenant_id] = (
                    f"model {event.model_tag} could not be loaded ({exc}); retrying"
                )
                log.warning(
                    "could not load model",
                    extra={"tenant_id": event.tenant_id, "tag": event.model_tag, "error": str(exc)},
                )
                await asyncio.sleep(delay)
        champion = LoadedChampion(
            tenant_id=event.tenant_id,
            tag=event.model_tag,
            version=event.model_version,
            bundle=bundle,
            published=event,
            trained_at=trained_at,
            loaded_at=utc_now(),
        )
        old = self.current.get(event.tenant_id)
        self.current[event.tenant_id] = champion  # the swap: one reference replaced
        self.problems.pop(event.tenant_id, None)
        self._loading.pop(event.tenant_id, None)
        if old is not None and old.version != champion.version:
            self.previous.replaced(old)
            with contextlib.suppress(KeyError):
                telemetry.MODEL_INFO.remove(event.tenant_id, old.version)
        telemetry.MODEL_INFO.labels(event.tenant_id, champion.version).set(1)
        self.observe_age()
        log.info(
            "champion swapped in",
            extra={
                "tenant_id": event.tenant_id,
                "version": champion.version,
                "tag": event.model_tag,
            },
        )
        for hook in self.on_swap:
            try:
                await hook(champion)
            except Exception:
                log.exception("after-swap hook failed", extra={"tenant_id": event.tenant_id})

    def observe_age(self) -> None:
        now = utc_now()
        for tenant, champion in self.current.items():
            telemetry.MODEL_AGE.labels(tenant).set((now - champion.trained_at).total_seconds())

    def first_loads_pending(self) -> list[str]:
        """Tenants whose announced model is still in its first load attempt."""
        return sorted(t for t in self._loading if self._failures.get(t, 0) == 0)

    async def stop(self) -> None:
        await cancel(list(self._loading.values()))
        await self.previous.stop()
