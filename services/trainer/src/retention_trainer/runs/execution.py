"""One training run, from the lake to a published or rejected model, every outcome recorded.

The steps and their order are in the package's docstring (`runs/__init__.py`). Each stage's wall
time goes into the run record and the stage histogram; the CPU-heavy training runs in a worker
thread, one at a time across tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl

from retention_bundle.bundle import ModelBundle
from retention_bundle.model_store import load_bundle
from retention_shared.service import ServiceContext
from retention_trainer import telemetry
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.gate import GateDecision
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.publishers.model_events import ModelEventsPublisher
from retention_trainer.refit import refit_for_production
from retention_trainer.run_report import PreviousChampion, build_run_report
from retention_trainer.runs import promotion
from retention_trainer.runs.history import history_shortfall, orders_summary
from retention_trainer.runs.options import RunOptions
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
        # One CPU-heavy training at a time across tenants: on a few cores, parallel runs only
        # slow each other down and starve the event loop.
        self._training = asyncio.Semaphore(1)
        # Held from announcing a new champion until its pointer is stored, and by the announcer
        # while it compares model-events with the stored champions (announcer.py).
        self.announcing = asyncio.Lock()

    async def execute(self, record: RunRecord) -> None:
        stages = _Stages(record.timings)
        try:
            with stages.stage("lake_wait"):
                await self.lake.wait_caught_up(self.lake_wait_seconds)
            async with self._training:
                record.status, record.started_at = RunStatus.RUNNING, datetime.now(UTC)
                self.store.save(record)
                run, decision, orders = await self._train(record, stages)
            async with self.announcing:
                with stages.stage("publish"):
                    if decision.promote:
                        champion = await promotion.promote(
                            record,
                            run,
                            orders,
                            settings=self.ctx.settings,
                            model_events=self.model_events,
                        )
                    else:
                        champion = None
                        await promotion.reject(record, decision, model_events=self.model_events)
                status = RunStatus.PUBLISHED if champion else RunStatus.REJECTED
                self.finish(record, status, decision.reason, champion)
            if champion is not None:
                promotion.set_champion_gauges(champion)
        except asyncio.CancelledError:
            raise  # the record stays queued/running and is resumed after a restart
        except _Finished as finished:
            self.finish(record, finished.status, finished.message)
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

    async def _train(
        self, record: RunRecord, stages: _Stages
    ) -> tuple[TrainingRun, GateDecision, pl.DataFrame]:
        settings = self.ctx.settings
        tenant = record.tenant_id
        with stages.stage("lake_read"):
            async with self.lake.reading() as lake:
                orders = await asyncio.to_thread(lake.orders, tenant)
        record.data = orders_summary(orders)
        shortfall = history_shortfall(orders, settings)
        if shortfall:
            raise _Finished(RunStatus.SKIPPED, shortfall)
        champion, champion_bundle = await self._champion(tenant)
        options = RunOptions.from_dict(record.options)
        try:
            run = await asyncio.to_thread(
                train_and_backtest,
                orders,
                tenant=tenant,
                every_days=options.cutoff_every_days or settings.cutoff_every_days,
                rolling_origins=settings.trainer_rolling_origins,
                previous_segmenter=champion_bundle.segmenter if champion_bundle else None,
            )
        except ValueError as error:  # the pipeline's answer to data that cannot hold a backtest
            raise _Finished(RunStatus.SKIPPED, f"not enough data for a backtest: {error}") from None
        for name, seconds in run.timings.items():
            if name != "total":
                stages.add(name, seconds)
        record.report, record.markdown = run.report.as_json(), run.markdown
        with stages.stage("gate"):
            decision = await asyncio.to_thread(promotion.gate, run, champion_bundle)
        record.gate = {
            **decision.as_dict(),
            "champion_tag": champion.model_tag if champion else None,
        }
        if decision.promote:
            # Decided on the held-out evidence; what is stored and served is the same model
            # refitted on the latest complete labels, carrying that evidence unchanged.
            with stages.stage("refit"):
                refitted = await asyncio.to_thread(refit_for_production, run, orders)
            run = dataclasses.replace(run, bundle=refitted)
            assert refitted.production is not None
            record.production = refitted.production.model_dump(mode="json")
        with stages.stage("report"):
            previous = None
            if champion is not None:  # an unreadable champion bundle leaves nothing to compare
                previous = (
                    PreviousChampion.of(champion.model_tag, champion_bundle)
                    if champion_bundle
                    else PreviousChampion(champion.model_tag, None, {})
                )
            report = await asyncio.to_thread(
                build_run_report, run, orders, previous=previous, gate=decision.as_dict()
            )
        record.run_report = report.markdown
        bundle = dataclasses.replace(
            run.bundle, run_report=report.markdown, run_report_facts=report.facts
        )
        return dataclasses.replace(run, bundle=bundle), decision, orders

    async def _champion(self, tenant: str) -> tuple[ChampionRecord | None, ModelBundle | None]:
        champion = self.store.champion(tenant)
        if champion is None:
            return None, None
        try:
            return champion, await asyncio.to_thread(load_bundle, champion.model_tag)
        except Exception:  # the store lost it: the gate has nothing to compare with
            log.exception("champion bundle unreadable", extra={"model_tag": champion.model_tag})
            return champion, None
