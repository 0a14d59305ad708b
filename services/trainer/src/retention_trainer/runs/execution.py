"""One training run, from the lake to a published or rejected model, every outcome recorded.

The steps and their order are in the package's docstring (`runs/__init__.py`). Each stage's wall
time goes into the run record and the stage histogram; the CPU- and memory-heavy training runs in
a child process started for the run (`child.py`), one at a time across tenants, and the
promotion and announcements stay here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retention_shared.service import ServiceContext
from retention_trainer import telemetry
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.publishers.model_events import ModelEventsPublisher
from retention_trainer.runs import promotion
from retention_trainer.runs.child import ChildFailed, train_in_child
from retention_trainer.store import ChampionRecord, RunRecord, RunStatus, RunStore

__all__ = ["LAKE_WAIT_SECONDS", "RunExecutor"]

log = logging.getLogger(__name__)

# How long a run waits for the lake to catch up with `transactions` before it fails.
LAKE_WAIT_SECONDS = 600.0


class _Stages:
    """Wall time per stage, into the run record and the stage histogram."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        telemetry.STAGE_DURATION.labels(name).observe(seconds)


class _Finished(Exception):
    """Ends a run early with a final status and message (skipped runs)."""

    def __init__(self, status: RunStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RunExecutor:
    """Carries out runs the queue hands it and records how each one ended."""

    def __init__(
        self,
        ctx: ServiceContext,
        store: RunStore,
        lake: LakeConsumer,
        lake_wait_seconds: float = LAKE_WAIT_SECONDS,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.lake = lake
        self.lake_wait_seconds = lake_wait_seconds
        self.model_events = ModelEventsPublisher(ctx)
        # Each run's request and bundle files, on disk (not a tmpfs /tmp, which would be RAM);
        # what a killed trainer left here belongs to no run any more.
        self.run_dirs = Path(ctx.settings.data_dir) / "trainer" / "run-dirs"
        shutil.rmtree(self.run_dirs, ignore_errors=True)
        self.run_dirs.mkdir(parents=True, exist_ok=True)
        # One CPU-heavy training at a time across tenants: on a few cores, parallel runs only
        # slow each other down and starve the event loop.
        self._training = asyncio.Semaphore(1)
        # Held from announcing a new champion until its pointer is stored, and by the announcer
        # while it compares model-events with the stored champions (announcer.py).
        self.announcing = asyncio.Lock()

    async def execute(self, record: RunRecord) -> None:
        stages = _Stages(record.timings)
        try:
            with tempfile.TemporaryDirectory(prefix="run-", dir=self.run_dirs) as run_dir:
                with stages.stage("lake_wait"):
                    await self.lake.wait_caught_up(self.lake_wait_seconds)
                async with self._training:
                    record.status, record.started_at = RunStatus.RUNNING, datetime.now(UTC)
                    self.store.save(record)
                    candidate = await self._train(record, stages, Path(run_dir))
                decision = candidate["decision"]
                async with self.announcing:
                    with stages.stage("publish"):
                        if decision["promote"]:
                            champion = await promotion.promote(
                                record,
                                candidate["bundle"],
                                settings=self.ctx.settings,
                                model_events=self.model_events,
                            )
                        else:
                            champion = None
                            await promotion.reject(record, decision, model_events=self.model_events)
                    status = RunStatus.PUBLISHED if champion else RunStatus.REJECTED
                    self.finish(record, status, decision["reason"], champion)
            if champion is not None:
                promotion.set_champion_gauges(champion)
        except asyncio.CancelledError:
            raise  # the record stays queued/running and is resumed after a restart
        except _Finished as finished:
            self.finish(record, finished.status, finished.message)
        except ChildFailed as failed:
            log.error("training run failed: %s", failed, extra={"run_id": record.run_id})
            self.finish(record, RunStatus.FAILED, str(failed))
        except Exception as error:
            log.exception("training run failed", extra={"run_id": record.run_id})
            self.finish(record, RunStatus.FAILED, f"{type(error).__name__}: {error}")

    def finish(
        self,
        record: RunRecord,
        status: RunStatus,
        message: str,
        champion: ChampionRecord | None = None,
    ) -> None:
        """Record how a run ended (and the new champion, in the same write)."""
        record.status, record.message = status, message
        record.finished_at = datetime.now(UTC)
        self.store.save(record, champion)
        telemetry.RUNS.labels(record.tenant_id, status.value).inc()
        if status in (RunStatus.PUBLISHED, RunStatus.REJECTED):
            telemetry.LAST_SUCCESS.labels(record.tenant_id).set(record.finished_at.timestamp())
        log.info(
            "run finished",
            extra={
                "tenant_id": record.tenant_id,
                "run_id": record.run_id,
                "status": status.value,
                "detail": message,
            },
        )

    async def _train(self, record: RunRecord, stages: _Stages, run_dir: Path) -> dict[str, Any]:
        """The run's training in a child process: the record's fields filled in as it reports;
        the candidate (`candidate.train_candidate`), or `_Finished` when it was skipped."""
        champion = self.store.champion(record.tenant_id)
        request = {
            "run_id": record.run_id,
            "tenant": record.tenant_id,
            "options": record.options,
            "champion_tag": champion.model_tag if champion else None,
        }
        lake_read = asyncio.Event()
        spawned = time.perf_counter()

        def on_event(event: dict[str, Any]) -> None:
            kind = event["event"]
            if kind == "started":
                stages.add("child_start", time.perf_counter() - spawned)
            elif kind == "stage":
                stages.add(event["name"], event["seconds"])
                if event["name"] == "lake_read":
                    lake_read.set()
            elif kind == "data":
                record.data = event["data"]

        async with self._reading_lake(lake_read):
            final = await train_in_child(run_dir, request, on_event)
        if final["event"] == "skipped":
            raise _Finished(RunStatus.SKIPPED, final["message"])
        record.report, record.markdown = final["report"], final["markdown"]
        record.gate = {**final["decision"], "champion_tag": request["champion_tag"]}
        if final["production"] is not None:
            record.production = final["production"]
        record.run_report = final["run_report"]
        return final

    @contextlib.asynccontextmanager
    async def _reading_lake(self, done: asyncio.Event) -> AsyncIterator[None]:
        """Compaction held off from now until `done` is set (the child has read the tenant's
        orders) or the block ends."""
        held = asyncio.Event()

        async def hold() -> None:
            async with self.lake.reading():
                held.set()
                await done.wait()

        holder = asyncio.create_task(hold(), name="lake-reading")
        waiting = asyncio.create_task(held.wait())
        try:
            await asyncio.wait((holder, waiting), return_when=asyncio.FIRST_COMPLETED)
            if holder.done():
                holder.result()  # the lake failed before it was held: its error ends the run
            yield
        finally:
            done.set()
            waiting.cancel()
            await holder
