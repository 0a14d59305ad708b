"""Whether a trained candidate replaces the tenant's champion, and what is announced either way.

The gate compares the candidate with the champion on the candidate's own test set. A promoted
bundle is stored (and exported) before `ModelPublished` goes out; if the announcement fails the
stored bundle is deleted again, so `retention-<tenant>:latest` always names a bundle that was
champion. A rejected candidate is never stored: `ModelRejected` names it by its run id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import bentoml
import polars as pl

from retention_bundle.backtest_report import BacktestReport
from retention_bundle.bundle import ModelBundle
from retention_bundle.export import export_model
from retention_bundle.model_store import save_bundle
from retention_shared.config import Settings
from retention_shared.events import ModelPublished, ModelRejected, TimeWindow
from retention_trainer import telemetry
from retention_trainer.gate import GateDecision, GateMetrics, decide, gate_metrics
from retention_trainer.pipeline import TrainingRun
from retention_trainer.publishers.model_events import ModelEventsPublisher
from retention_trainer.store import ChampionRecord, RunRecord

__all__ = ["gate", "headline_metrics", "promote", "reject", "set_champion_gauges"]

log = logging.getLogger(__name__)


def headline_metrics(report: BacktestReport) -> dict[str, float]:
    """The model's backtest metrics (churn and LTV keys do not collide), finite ones only."""
    found = {**report.churn.model.model_dump(), **report.ltv.model.model_dump()}
    return {
        k: float(v) for k, v in found.items() if isinstance(v, int | float) and math.isfinite(v)
    }


def gate(run: TrainingRun, champion: ModelBundle | None) -> GateDecision:
    """The gate's decision on the candidate against the champion's bundle (None: no champion,
    or an unreadable one). CPU-bound: call it in a worker thread."""
    candidate = gate_metrics(run.bundle, run.churn_test, run.ltv_test)
    incumbent: GateMetrics | None = None
    if champion is not None:
        try:
            # The champion as its own gate judged it: its refit has seen labels inside this
            # run's test window, its evidence models have not.
            incumbent = gate_metrics(champion.held_out(), run.churn_test, run.ltv_test)
        except ValueError:  # a champion of another feature schema cannot score these rows
            log.warning("champion cannot score the new test set; gating without it")
    return decide(candidate, incumbent)


async def promote(
    record: RunRecord,
    run: TrainingRun,
    orders: pl.DataFrame,
    *,
    settings: Settings,
    model_events: ModelEventsPublisher,
) -> ChampionRecord:
    """Store the bundle (and export it), then announce it; returns the new champion."""
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
        await model_events.publish(event)
    except BaseException:
        # Not announced, so not champion: keep `latest` meaning "the champion".
        with contextlib.suppress(Exception):
            await asyncio.to_thread(_delete_model, tag)
        raise
    record.model_tag = tag
    # The announcement's own time: re-announcing the champion later sends the same event.
    return ChampionRecord(record.tenant_id, tag, record.run_id, headline, event.published_at)


async def reject(
    record: RunRecord, decision: GateDecision, *, model_events: ModelEventsPublisher
) -> None:
    """Announce that the candidate stays a candidate, with both sets of numbers."""
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
    await model_events.publish(event)


def set_champion_gauges(champion: ChampionRecord) -> None:
    for name, value in champion.metrics.items():
        telemetry.CHAMPION_METRIC.labels(champion.tenant_id, name).set(value)


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if math.isfinite(v)}


def _delete_model(tag: str) -> None:
    bentoml.models.delete(tag)
