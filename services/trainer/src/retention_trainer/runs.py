"""Training runs: one at a time per tenant, triggers coalesced, every outcome recorded.

A trigger (schedule, `RetrainRequested`, `DriftDetected`, `POST /v1/retrain`) asks for a run of
its tenant. With no run of that tenant under way, a run starts; during a run, triggers collect
into one queued follow-up run, which starts when the current one ends. A run:

1. waits until the lake holds every order published to `transactions` before it started
   (`lake_wait`): a `RetrainRequested` from an upload may overtake the upload's orders;
2. reads the tenant's orders from the lake (`lake_read`) and checks there is enough history
   (`RETENTION_MIN_TRAINING_CUSTOMERS`, `RETENTION_MIN_TRAINING_HISTORY_DAYS`), else `skipped`;
3. trains and backtests in a worker thread (the pipeline's stages), keeping the champion's
   persona names (its segmenter);
4. puts the bundle through the gate (:mod:`retention_trainer.gate`) and writes the run report
   (:mod:`retention_trainer.run_report`), kept with the record and in the bundle;
5. promoted bundles go into the BentoML store (and to S3 when `RETENTION_MODEL_EXPORT_URL` is
   set) and `ModelPublished` goes out on `model-events`; otherwise `ModelRejected`, with both
   sets of numbers.

Rejected candidates are not put in the model store, so `retention-<tenant>:latest` is always a
bundle that was champion; their reports stay with the run record. A pipeline error makes a
`failed` record with its message; the service keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bentoml
import polars as pl

from retention_bundle.backtest_report import BacktestReport
from retention_bundle.bundle import ModelBundle
from retention_bundle.export import export_model
from retention_bundle.model_store import load_bundle, save_bundle
from retention_shared.config import Settings
from retention_shared.events import ModelPublished, ModelRejected, TimeWindow
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel
from retention_trainer import telemetry
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.gate import GateDecision, GateMetrics, decide, gate_metrics
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.publishers.model_events import ModelEventsPublisher
from retention_trainer.run_report import PreviousChampion, build_run_report
from retention_trainer.store import ChampionRecord, RunRecord, RunStatus, RunStore, Trigger

__all__ = [
    "RunManager",
    "RunOptions",
    "headline_metrics",
    "history_shortfall",
    "orders_summary",
    "set_champion_gauges",
]

log = logging.getLogger(__name__)

# How long a run waits for the lake to catch up with `transactions` before it fails.
LAKE_WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class RunOptions:
    """Per-run overrides of the settings (from `POST /v1/retrain`)."""

    # Spacing of the training cutoffs; sparser is faster and usually less accurate.
    cutoff_every_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOptions:
        return cls(**data)


def orders_summary(orders: pl.DataFrame) -> dict[str, Any]:
    """How much history an orders frame holds."""
    first, last = orders["occurred_at"].min(), orders["occurred_at"].max()
    return {
        "orders": orders.height,
        "customers": orders["customer_id"].n_unique(),
        "first_order_at": first.isoformat() if first else None,
        "last_order_at": last.isoformat() if last else None,
    }


def history_shortfall(orders: pl.DataFrame, settings: Settings) -> str | None:
    """Why the orders are too little to train on, or None when they are enough."""
    if orders.is_empty():
        return "no orders in the lake for this tenant"
    customers = orders.filter(pl.col("kind") == "purchase")["customer_id"].n_unique()
    first, last = orders["occurred_at"].min(), orders["occurred_at"].max()
    days = (last - first).total_seconds() / 86_400
    problems = []
    if customers < settings.min_training_customers:
        problems.append(
            f"{customers} customers with a purchase, fewer than the "
            f"{settings.min_training_customers} needed (RETENTION_MIN_TRAINING_CUSTOMERS)"
        )
    if days < settings.min_training_history_days:
        problems.append(
            f"{days:.0f} days of history, less than the {settings.min_training_history_days} "
            "needed (RETENTION_MIN_TRAINING_HISTORY_DAYS)"
        )
    return "too little history: " + "; ".join(problems) if problems else None


def headline_metrics(report: BacktestReport) -> dict[str, float]:
    """The model's backtest metrics (churn and LTV keys do not collide), finite ones only."""
    found = {**report.churn.model.model_dump(), **report.ltv.model.model_dump()}
    return {
        k: float(v) for k, v in found.items() if isinstance(v, int | float) and math.isfinite(v)
    }


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


class RunManager:
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
        self._active: dict[str, asyncio.Task[None]] = {}
        self._follow_up: dict[str, str] = {}
        # One CPU-heavy training at a time across tenants: on a few cores, parallel runs only
        # slow each other down and starve the event loop.
        self._training = asyncio.Semaphore(1)
        # Held from announcing a new champion until its pointer is stored, and by the announcer
        # while it compares model-events with the stored champions (announcer.py).
        self.announcing = asyncio.Lock()
        self._stopping = False

    # --- triggers ---------------------------------------------------------------------------

    def submit(
        self, tenant_id: str, trigger: Trigger, options: RunOptions | None = None
    ) -> RunRecord:
        """Start a run of the tenant, or fold the trigger into its one queued follow-up run."""
        follow_up = self._follow_up.get(tenant_id)
        if follow_up is not None:
            record = self.store.get(follow_up)
            assert record is not None
            record.triggers.append(trigger)
            if options is not None and options.as_dict():
                record.options = options.as_dict()  # the latest explicit options apply
            self.store.save(record)
            return record
        record = RunRecord(
            run_id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            status=RunStatus.QUEUED,
            triggers=[trigger],
            options=options.as_dict() if options else {},
            created_at=datetime.now(UTC),
        )
        self.store.add(record)
        self._enqueue(record)
        log.info(
            "run queued",
            extra={"tenant_id": tenant_id, "run_id": record.run_id, "trigger": trigger.kind},
        )
        return record

    def resume(self) -> None:
        """Queue again the runs a stop or crash left unfinished (they start from scratch)."""
        for record in self.store.unfinished():
            follow_up = self._follow_up.get(record.tenant_id)
            if follow_up is not None:  # more than one left over: one follow-up takes them all
                merged = self.store.get(follow_up)
                assert merged is not None
                merged.triggers.extend(record.triggers)
                self.store.save(merged)
                self._finish(record, RunStatus.FAILED, f"merged into run {follow_up} on restart")
                continue
            record.status, record.started_at = RunStatus.QUEUED, None
            record.timings, record.data, record.gate = {}, None, None
            record.run_report = None
            record.message = "resumed after a restart"
            self.store.save(record)
            self._enqueue(record)

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._active.values())
        await cancel(tasks)

    def _enqueue(self, record: RunRecord) -> None:
        tenant = record.tenant_id
        if tenant in self._active:
            self._follow_up[tenant] = record.run_id
            return
        task = asyncio.create_task(self._execute(record), name=f"run-{record.run_id}")
        self._active[tenant] = task
        task.add_done_callback(lambda _: self._done(tenant))

    def _done(self, tenant_id: str) -> None:
        self._active.pop(tenant_id, None)
        follow_up = self._follow_up.pop(tenant_id, None)
        if follow_up is not None and not self._stopping:
            record = self.store.get(follow_up)
            assert record is not None
            self._enqueue(record)

    # --- one run ----------------------------------------------------------------------------

    async def _execute(self, record: RunRecord) -> None:
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
                        champion = await self._promote(record, run, orders)
                    else:
                        champion = None
                        await self._reject(record, decision)
                status = RunStatus.PUBLISHED if champion else RunStatus.REJECTED
                self._finish(record, status, decision.reason, champion)
            if champion is not None:
                set_champion_gauges(champion)
        except asyncio.CancelledError:
            raise  # the record stays queued/running and is resumed after a restart
        except _Finished as finished:
            self._finish(record, finished.status, finished.message)
        except Exception as error:
            log.exception("training run failed", extra={"run_id": record.run_id})
            self._finish(record, RunStatus.FAILED, f"{type(error).__name__}: {error}")

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
            decision = await asyncio.to_thread(self._gate, run, champion_bundle)
        record.gate = {
            **decision.as_dict(),
            "champion_tag": champion.model_tag if champion else None,
        }
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

    @staticmethod
    def _gate(run: TrainingRun, champion: ModelBundle | None) -> GateDecision:
        candidate = gate_metrics(run.bundle, run.churn_test, run.ltv_test)
        incumbent: GateMetrics | None = None
        if champion is not None:
            try:
                incumbent = gate_metrics(champion, run.churn_test, run.ltv_test)
            except ValueError:  # a champion of another feature schema cannot score these rows
                log.warning("champion cannot score the new test set; gating without it")
        return decide(candidate, incumbent)

    async def _promote(
        self, record: RunRecord, run: TrainingRun, orders: pl.DataFrame
    ) -> ChampionRecord:
        """Store the bundle (and export it), then announce it; returns the new champion."""
        settings = self.ctx.settings
        model = await asyncio.to_thread(save_bundle, run.bundle)
        tag = str(model.tag)
        try:
            if settings.model_export_url:
                await asyncio.to_thread(export_model, tag, settings)
            headline = headline_metrics(run.report)
            event = ModelPublished(
                tenant_id=record.tenant_id,
                model_tag=tag,
                model_version=str(model.tag.version),
                run_id=record.run_id,
                training_window=TimeWindow(
                    start=orders["occurred_at"].min(), end=orders["occurred_at"].max()
                ),
                metrics=headline,
            )
            await self.model_events.publish(event)
        except BaseException:
            # Not announced, so not champion: keep `latest` meaning "the champion".
            with contextlib.suppress(Exception):
                await asyncio.to_thread(_delete_model, tag)
            raise
        record.model_tag = tag
        # The announcement's own time: re-announcing the champion later sends the same event.
        return ChampionRecord(record.tenant_id, tag, record.run_id, headline, event.published_at)

    async def _reject(self, record: RunRecord, decision: GateDecision) -> None:
        assert decision.champion is not None
        champion_tag = (record.gate or {}).get("champion_tag")
        event = ModelRejected(
            tenant_id=record.tenant_id,
            run_id=record.run_id,
            # Rejected bundles are not stored; the run id names the candidate.
            candidate_version=record.run_id,
            champion_version=champion_tag.split(":", 1)[-1] if champion_tag else None,
            reason=decision.reason,
            candidate_metrics=_finite(decision.candidate.as_dict()),
            champion_metrics=_finite(decision.champion.as_dict()),
        )
        await self.model_events.publish(event)

    def _finish(
        self,
        record: RunRecord,
        status: RunStatus,
        message: str,
        champion: ChampionRecord | None = None,
    ) -> None:
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


def set_champion_gauges(champion: ChampionRecord) -> None:
    for name, value in champion.metrics.items():
        telemetry.CHAMPION_METRIC.labels(champion.tenant_id, name).set(value)


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if math.isfinite(v)}


def _delete_model(tag: str) -> None:
    bentoml.models.delete(tag)
