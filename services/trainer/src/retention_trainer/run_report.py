"""The run report's numbers: what a manager reads after a training run (no I/O).

Every trained run (published or rejected) gets one, next to the backtest report:

- **headline** at the run's data end (its last order): customers, customers active in the last
  90 days, customers at high churn risk, revenue at risk (Σ churn probability × predicted LTV)
  and predicted revenue (Σ predicted LTV over the model's LTV horizon). The customers are scored
  by the run's own bundle on features from the shared definition at that instant, which is what
  scoring serves for this model while no newer order has arrived (its tenant clock is the latest
  order); bands and the segment table are `retention_shared.score_summaries`, as in scoring;
- **segments** at the data end, with their actions and revenue at risk;
- **drivers**: the ten features with the largest mean absolute contribution to the churn log-odds
  over those customers (`churn_contributions`, the numbers behind scoring's reasons);
- **backtest** of the model against every baseline (from the backtest report), its **rolling**
  evaluation (means over the test origins and the paired bootstrap interval of model − best
  baseline per metric, with a one-line reading), and a **reliability** table on the churn test
  customers: predicted against observed churn per bin;
- **changes** against the previous champion: the gate's numbers (both models on this run's test
  set), backtest metrics, segment sizes at each model's churn test cutoff and, when the
  champion's bundle holds a run report, the headline numbers;
- **campaign**: `plan_campaign` (`retention_shared.campaigns`) over every customer for a
  default budget (`REPORT_CAMPAIGN`, the demo's sample campaign).

`build_run_report` returns the numbers (JSON-able) and their Markdown
(:mod:`retention_trainer.run_report_markdown`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from retention_bundle.backtest_report import BacktestReport, ChurnBacktest, LTVBacktest
from retention_bundle.bundle import ModelBundle
from retention_bundle.predict import churn_contributions, score
from retention_shared.campaigns import CampaignRequest, plan_campaign
from retention_shared.events import RiskBand
from retention_shared.features import FEATURES_BY_NAME, compute_features
from retention_shared.score_summaries import risk_bands, segment_table
from retention_trainer.evaluation.metrics import CHURN_METRIC_KEYS, LTV_METRIC_KEYS
from retention_trainer.pipeline import TrainingRun
from retention_trainer.run_report_markdown import render_run_report

__all__ = [
    "ACTIVE_DAYS",
    "DRIVERS",
    "REPORT_CAMPAIGN",
    "PreviousChampion",
    "RunReport",
    "build_run_report",
    "reliability_table",
]

# The demo's sample campaign: a budget a retention team can spend without asking.
REPORT_CAMPAIGN = CampaignRequest(budget=2000.0, cost_per_contact=5.0, save_rate=0.25, discount=0.1)
ACTIVE_DAYS = 90  # `orders_90d` > 0: a purchase in the last 90 days
DRIVERS = 10
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class RunReport:
    facts: dict[str, Any]
    markdown: str


@dataclass(frozen=True)
class PreviousChampion:
    """What the run is compared with: the champion's tag, backtest report (None when its bundle
    could not be read) and run report facts (empty for a bundle written before run reports
    existed)."""

    model_tag: str
    report: BacktestReport | None
    facts: dict[str, Any]

    @classmethod
    def of(cls, model_tag: str, bundle: ModelBundle) -> PreviousChampion:
        return cls(model_tag, bundle.report, dict(bundle.run_report_facts))


def build_run_report(
    run: TrainingRun,
    orders: pl.DataFrame,
    *,
    previous: PreviousChampion | None = None,
    gate: dict[str, Any] | None = None,
    campaign: CampaignRequest = REPORT_CAMPAIGN,
) -> RunReport:
    """The report of a trained run on the orders it read (`ORDER_SCHEMA`). `gate` is the gate's
    decision (`GateDecision.as_dict()`); without a champion both `previous` and its numbers are
    absent (a first run, or `retention backtest`)."""
    bundle = run.bundle
    as_of = orders["occurred_at"].max()
    assert isinstance(as_of, datetime)
    features = compute_features(orders, as_of)
    scores = _scores(bundle, features)
    headline = _headline(features, scores, bundle.ltv.horizon_days)
    facts: dict[str, Any] = {
        "tenant": bundle.tenant,
        "as_of": as_of.isoformat(),
        "first_order_at": orders["occurred_at"].min().isoformat(),  # type: ignore[union-attr]
        "orders": orders.height,
        "headline": headline,
        "segments": segment_table(
            scores,
            features["monetary"],
            dict(zip(bundle.segmenter.names, bundle.segmenter.actions, strict=True)),
        ),
        "drivers": _drivers(bundle, features),
        "backtest": _backtest(run.report),
        "rolling": _rolling(run.report),
        "reliability": reliability_table(
            run.churn_predictions["churn_probability"].to_numpy(),
            run.churn_test["churned"].to_numpy(),
        ),
        "gate": gate,
        "changes": _changes(run.report, headline, previous) if previous else None,
        "campaign": _campaign(scores, campaign),
        "notes": list(run.report.notes),
        "sampling": run.report.sampling.model_dump(mode="json") if run.report.sampling else None,
        # What is served: the refit on the latest complete labels (trainer runs that promote),
        # or None (a rejected run, `retention backtest`).
        "production": bundle.production.model_dump(mode="json") if bundle.production else None,
    }
    return RunReport(facts=facts, markdown=render_run_report(facts))


def _scores(bundle: ModelBundle, features: pl.DataFrame) -> pl.DataFrame:
    """The columns scoring derives from a bundle's scores (`score_customers`), per customer."""
    scored = score(bundle, features)
    p = scored["churn_probability"].to_numpy()
    return scored.select(
        "customer_id",
        "churn_probability",
        "segment",
        risk_band=pl.Series(risk_bands(p).tolist(), dtype=pl.String),
        predicted_ltv=pl.col("ltv"),
        revenue_at_risk=pl.col("churn_probability") * pl.col("ltv"),
    )


def _headline(features: pl.DataFrame, scores: pl.DataFrame, horizon_days: int) -> dict[str, Any]:
    return {
        "customers": scores.height,
        "active_90d": int((features[f"orders_{ACTIVE_DAYS}d"] > 0).sum()),
        "at_risk": int((scores["risk_band"] == RiskBand.HIGH.value).sum()),
        "revenue_at_risk": float(scores["revenue_at_risk"].sum()),
        "predicted_revenue": float(scores["predicted_ltv"].sum()),
        "ltv_horizon_days": horizon_days,
    }


def _drivers(bundle: ModelBundle, features: pl.DataFrame) -> list[dict[str, Any]]:
    """The strongest churn drivers overall: mean |contribution| to the churn log-odds, with the
    share of customers whose risk the feature raises."""
    names = list(bundle.feature_names)
    contributions = churn_contributions(bundle, features).select(names).to_numpy()
    strength = np.abs(contributions).mean(axis=0)
    raises = (contributions > 0).mean(axis=0)
    top = np.argsort(-strength, kind="stable")[:DRIVERS]
    return [
        {
            "feature": names[i],
            "meaning": _first_sentence(FEATURES_BY_NAME[names[i]].meaning)
            if names[i] in FEATURES_BY_NAME
            else "",
            "mean_abs_contribution": float(strength[i]),
            "raises_share": float(raises[i]),
        }
        for i in top
    ]


def _first_sentence(text: str) -> str:
    head, _, _ = text.partition(". ")
    return head.rstrip(".") + "."


def _metrics(
    section: ChurnBacktest | LTVBacktest, keys: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    rows = {"model": section.model, **section.baselines}
    return {name: {k: _number(getattr(m, k)) for k in keys} for name, m in rows.items()}


def _backtest(report: BacktestReport) -> dict[str, Any]:
    windows = report.windows
    return {
        "churn": {
            "test_cutoff": windows.churn.test_cutoff.isoformat(),
            "horizon_days": windows.churn.horizon_days,
            "test_customers": report.churn.test_customers,
            "churn_rate": report.churn.churn_rate,
            "metrics": _metrics(report.churn, CHURN_METRIC_KEYS),
        },
        "ltv": {
            "test_cutoff": windows.ltv.test_cutoff.isoformat(),
            "horizon_days": windows.ltv.horizon_days,
            "test_customers": report.ltv.test_customers,
            "metrics": _metrics(report.ltv, LTV_METRIC_KEYS),
        },
    }


def _rolling(report: BacktestReport) -> dict[str, Any] | None:
    """The backtest's ``rolling`` block with every number finite or None (a report from before
    the rolling evaluation has none)."""
    rolling = report.rolling
    if rolling is None:
        return None
    metrics = {
        task: {
            name: {
                "model_mean": _number(e.model_mean),
                "baselines": {b: _number(v) for b, v in e.baselines.items()},
                "best_baseline": e.best_baseline,
                "diff_mean": _number(e.diff_mean),
                "diff_interval_90": [_number(v) for v in e.diff_interval_90],
                "higher_is_better": e.higher_is_better,
                "verdict": e.verdict,
            }
            for name, e in entries.items()
        }
        for task, entries in rolling.metrics.items()
    }
    origins = rolling.origins
    return {
        "origins": {
            "churn": [d.isoformat() for d in origins.churn],
            "ltv": [d.isoformat() for d in origins.ltv],
        },
        "origin_every_days": rolling.origin_every_days,
        "resamples": rolling.resamples,
        "metrics": metrics,
    }


def reliability_table(
    probability: np.ndarray, churned: np.ndarray, bins: int = RELIABILITY_BINS
) -> list[dict[str, Any]]:
    """Predicted against observed churn in equal-width probability bins (the last one holds
    p = 1); empty bins are left out."""
    p = np.asarray(probability, dtype=float)
    y = np.asarray(churned, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y, minlength=bins)
    return [
        {
            "low": k / bins,
            "high": (k + 1) / bins,
            "customers": int(counts[k]),
            "mean_predicted": float(predicted[k] / counts[k]),
            "observed": float(observed[k] / counts[k]),
        }
        for k in range(bins)
        if counts[k]
    ]


def _number(value: Any) -> float | None:
    """A metric as a finite float, or None (undefined on the data, or missing)."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _delta(new: Any, old: Any) -> dict[str, float | None]:
    new, old = _number(new), _number(old)
    change = new - old if new is not None and old is not None else None
    return {"champion": old, "run": new, "change": change}


def _changes(
    report: BacktestReport, headline: dict[str, Any], previous: PreviousChampion
) -> dict[str, Any]:
    old = previous.report
    metrics = {
        f"churn {key}": _delta(
            getattr(report.churn.model, key), getattr(old.churn.model, key) if old else None
        )
        for key in CHURN_METRIC_KEYS
    } | {
        f"ltv {key}": _delta(
            getattr(report.ltv.model, key), getattr(old.ltv.model, key) if old else None
        )
        for key in LTV_METRIC_KEYS
    }
    new_sizes = {s.segment: s.customers for s in report.segments}
    old_sizes = {s.segment: s.customers for s in old.segments} if old else {}
    segments = [
        {
            "segment": name,
            "champion": old_sizes.get(name),
            "run": new_sizes.get(name),
            "change": new_sizes.get(name, 0) - old_sizes.get(name, 0),
        }
        for name in dict.fromkeys([*new_sizes, *old_sizes])
    ]
    old_headline = previous.facts.get("headline")
    return {
        "champion_tag": previous.model_tag,
        "champion_test_cutoff": old.windows.churn.test_cutoff.isoformat() if old else None,
        "metrics": metrics,
        "segments": segments,
        "headline": {
            key: _delta(headline[key], old_headline.get(key))
            for key in (
                "customers",
                "active_90d",
                "at_risk",
                "revenue_at_risk",
                "predicted_revenue",
            )
        }
        if old_headline
        else None,
    }


def _campaign(scores: pl.DataFrame, request: CampaignRequest) -> dict[str, Any]:
    plan = plan_campaign(
        scores["churn_probability"].to_numpy(), scores["predicted_ltv"].to_numpy(), request
    )
    chosen = scores[plan.selected.tolist()].with_columns(
        expected_net_value=pl.Series(plan.expected_value, dtype=pl.Float64)
    )
    by_segment = (
        chosen.group_by("segment")
        .agg(contacts=pl.len(), expected_net_value=pl.col("expected_net_value").sum())
        .sort(["contacts", "segment"], descending=[True, False])
    )
    return {
        "request": asdict(request),
        "candidates": scores.height,
        "contacts": len(plan.selected),
        "by_segment": by_segment.to_dicts(),
        "expected": asdict(plan.expected),
        "pessimistic": asdict(plan.pessimistic),
        "optimistic": asdict(plan.optimistic),
    }
