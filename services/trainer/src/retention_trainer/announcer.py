"""Keeping `model-events` naming every tenant's champion, so champions survive a broker restart.

The trainer's run store knows each tenant's champion; scoring learns it only from the last
`ModelPublished` on `model-events`. An in-memory broker that restarts comes back with that topic
empty (and a new topic prefix or cluster starts empty), and scoring would answer 503 for every
tenant although the bundles are in the model store. So on start, and every
`CHECK_SECONDS`, the trainer reads `model-events` to its end and publishes `ModelPublished` again
for each champion whose tag is not the last one announced for its tenant. The event is the one
the promotion sent (same run, window, metrics and `published_at`), rebuilt from the run record.

Idempotent: a topic that names every champion gets nothing, and scoring ignores a repeat of the
version it serves. Promotions and checks take one lock, so a check never re-announces a champion
that a run is replacing at that moment.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import bentoml
from aiokafka import ConsumerRecord

from retention_shared.events import (
    EventDecodeError,
    ModelEvent,
    ModelPublished,
    TimeWindow,
    decode_event,
)
from retention_shared.health import CheckResult
from retention_shared.kafka.topic_reader import read_to_end
from retention_shared.service import ServiceContext
from retention_trainer.publishers.model_events import ModelEventsPublisher
from retention_trainer.store import ChampionRecord, RunStore

__all__ = ["CHECK_SECONDS", "ChampionAnnouncer", "champion_event", "last_announced"]

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0
READ_TIMEOUT_SECONDS = 30.0
RETRY_SECONDS = 2.0


async def last_announced(
    ctx: ServiceContext, timeout: float = READ_TIMEOUT_SECONDS
) -> dict[str, str]:
    """Tenant → model tag of its last `ModelPublished` on `model-events`, read to the end.

    The end is each partition's fetch high watermark (as scoring measures it; the embedded
    broker under-reports `end_offsets`).
    """
    latest: dict[str, str] = {}

    def remember(records: list[ConsumerRecord]) -> None:
        for record in records:
            try:
                event = decode_event(ModelEvent, record.value)
            except EventDecodeError:
                continue  # scoring logs these; nothing here depends on them
            if isinstance(event, ModelPublished):
                latest[event.tenant_id] = event.model_tag

    await read_to_end(ctx.settings, ctx.topic_to_consume("model-events"), remember, timeout)
    return latest


def champion_event(champion: ChampionRecord, store: RunStore) -> ModelPublished | None:
    """The `ModelPublished` that made `champion` champion; None without its run's data."""
    record = store.get(champion.run_id)
    data = (record.data if record else None) or {}
    first, last = data.get("first_order_at"), data.get("last_order_at")
    if not first or not last:
        return None
    return ModelPublished(
        tenant_id=champion.tenant_id,
        model_tag=champion.model_tag,
        model_version=champion.model_tag.split(":", 1)[1],
        run_id=champion.run_id,
        training_window=TimeWindow(start=first, end=last),
        metrics=champion.metrics,
        published_at=champion.promoted_at,
    )


def _in_model_store(tag: str) -> bool:
    try:
        bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        return False
    return True


@dataclass
class ChampionAnnouncer:
    ctx: ServiceContext
    store: RunStore
    # Shared with the run manager's promotions (publish + champion pointer).
    lock: asyncio.Lock
    check_seconds: float = CHECK_SECONDS
    checked: bool = False
    last_problem: str | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    model_events: ModelEventsPublisher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.model_events = ModelEventsPublisher(self.ctx)
        self.ctx.topic_to_consume("model-events")  # read back by `last_announced`

    async def start(self) -> None:
        self._task = asyncio.create_task(self._every_check(), name="champion announcements")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _every_check(self) -> None:
        while True:
            await self.reconcile()
            await asyncio.sleep(self.check_seconds if self.last_problem is None else RETRY_SECONDS)

    async def reconcile(self) -> list[str]:
        """Announce every champion `model-events` does not name; returns the tenants announced."""
        try:
            async with self.lock:
                announced = await self._announce_missing()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a broker hiccup: the next check tries again
            self.last_problem = f"{type(error).__name__}: {error}"
            log.warning("could not check model-events", extra={"error": self.last_problem})
            return []
        self.checked, self.last_problem = True, None
        return announced

    async def _announce_missing(self) -> list[str]:
        last = await last_announced(self.ctx)
        announced = []
        for champion in await asyncio.to_thread(self.store.champions):
            if last.get(champion.tenant_id) == champion.model_tag:
                continue
            event = await asyncio.to_thread(champion_event, champion, self.store)
            local = await asyncio.to_thread(_in_model_store, champion.model_tag)
            if event is None or not (local or self.ctx.settings.model_export_url):
                log.warning(
                    "champion cannot be announced again",
                    extra={"tenant_id": champion.tenant_id, "model_tag": champion.model_tag},
                )
                continue
            await self.model_events.publish(event)
            announced.append(champion.tenant_id)
            log.info(
                "champion announced again: model-events did not name it",
                extra={"tenant_id": champion.tenant_id, "model_tag": champion.model_tag},
            )
        return announced

    async def check(self) -> CheckResult:
        """Readiness: model-events was read once and names every champion it could."""
        if self.last_problem and not self.checked:
            return False, f"could not read model-events yet: {self.last_problem}"
        if not self.checked:
            return False, "checking that model-events names every champion"
        return True, "model-events names every champion"
