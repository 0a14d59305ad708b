"""The CPU- and memory-heavy part of a run, as the training child process carries it out.

Lake read → history check → train and backtest → gate → production refit (when promoted) → run
report. It runs in a child process (`child.py`, `child_main.py`) so that the trainer process
never imports scikit-learn and hands every byte of a run back to the system when the child exits.
What it hands back is JSON (`Candidate`, the record's fields) and, for a promoted candidate, the
bundle in its own on-disk format (:func:`retention_bundle.bundle.write_bundle`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from retention_bundle.backtest_report import BacktestReport
from retention_bundle.bundle import ModelBundle, write_bundle
from retention_bundle.model_store import bundle_metadata, load_bundle
from retention_shared.config import Settings
from retention_trainer.gate import GateDecision, GateMetrics, decide, gate_metrics
from retention_trainer.lake import open_lake
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.refit import refit_for_production
from retention_trainer.run_report import PreviousChampion, build_run_report
from retention_trainer.runs.history import history_shortfall, orders_summary
from retention_trainer.runs.options import RunOptions

__all__ = ["Skipped", "gate", "headline_metrics", "train_candidate"]

log = logging.getLogger(__name__)

# What the child tells its parent as it goes: an event name and its JSON fields.
Emit = Callable[[str, dict[str, Any]], None]


class Skipped(Exception):
    """The run ends without a candidate (too little history, no backtest possible)."""


def headline_metrics(report: BacktestReport) -> dict[str, float]:
    """The model's backtest metrics (churn and LTV keys do not collide), finite ones only."""
    found = {**report.churn.model.model_dump(), **report.ltv.model.model_dump()}
    return {
        k: float(v) for k, v in found.items() if isinstance(v, int | float) and math.isfinite(v)
    }


def gate(run: TrainingRun, champion: ModelBundle | None) -> GateDecision:
    """The gate's decision on the candidate against the champion's bundle (None: no champion,
    or an unreadable one)."""
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


def _champion_bundle(tag: str | None) -> ModelBundle | None:
    if tag is None:
        return None
    try:
        return load_bundle(tag)
    except Exception:  # the store lost it: the gate has nothing to compare with
        log.exception("champion bundle unreadable", extra={"model_tag": tag})
        return None


def train_candidate(
    settings: Settings,
    *,
    tenant: str,
    options: RunOptions,
    champion_tag: str | None,
    out_dir: Path,
    emit: Emit,
) -> dict[str, Any]:
    """One run's training, each stage's wall time emitted as it ends; the candidate as JSON.

    Raises `Skipped` when the tenant's orders cannot make a candidate. A promoted candidate's
    bundle is written to ``out_dir / "bundle"``.
    """

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        emit("stage", {"name": name, "seconds": time.perf_counter() - start})

    with stage("lake_read"):
        orders = open_lake(settings).orders(tenant)
    emit("data", {"data": orders_summary(orders)})
    shortfall = history_shortfall(orders, settings)
    if shortfall:
        raise Skipped(shortfall)
    champion_bundle = _champion_bundle(champion_tag)
    try:
        run = train_and_backtest(
            orders,
            tenant=tenant,
            every_days=options.cutoff_every_days or settings.cutoff_every_days,
            rolling_origins=settings.trainer_rolling_origins,
            max_customers=settings.trainer_max_customers,
            max_evaluation_customers=settings.trainer_max_evaluation_customers,
            previous_segmenter=champion_bundle.segmenter if champion_bundle else None,
        )
    except ValueError as error:  # the pipeline's answer to data that cannot hold a backtest
        raise Skipped(f"not enough data for a backtest: {error}") from None
    for name, seconds in run.timings.items():
        if name != "total":
            emit("stage", {"name": name, "seconds": seconds})
    fields: dict[str, Any] = {"report": run.report.as_json(), "markdown": run.markdown}
    with stage("gate"):
        decision = gate(run, champion_bundle)
    production = None
    if decision.promote:
        # Decided on the held-out evidence; what is stored and served is the same model
        # refitted on the latest complete labels, carrying that evidence unchanged.
        with stage("refit"):
            refitted = refit_for_production(run, orders)
        run = dataclasses.replace(run, bundle=refitted)
        assert refitted.production is not None
        production = refitted.production.model_dump(mode="json")
    with stage("report"):
        previous = None
        if champion_tag is not None:  # an unreadable champion bundle leaves nothing to compare
            previous = (
                PreviousChampion.of(champion_tag, champion_bundle)
                if champion_bundle
                else PreviousChampion(champion_tag, None, {})
            )
        report = build_run_report(run, orders, previous=previous, gate=decision.as_dict())
    candidate: dict[str, Any] = {
        **fields,
        "decision": decision.as_dict(),
        "production": production,
        "run_report": report.markdown,
    }
    if decision.promote:
        bundle = dataclasses.replace(
            run.bundle, run_report=report.markdown, run_report_facts=report.facts
        )
        with stage("bundle_write"):
            write_bundle(bundle, out_dir / "bundle")
        candidate["bundle"] = {
            "directory": str(out_dir / "bundle"),
            "metadata": bundle_metadata(bundle),
            "headline": headline_metrics(run.report),
            "training_window": [
                orders["occurred_at"].min().isoformat(),
                orders["occurred_at"].max().isoformat(),
            ],
        }
    return candidate
