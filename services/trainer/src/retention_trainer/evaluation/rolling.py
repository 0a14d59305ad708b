"""Rolling-origin evaluation: the model and every baseline at several test origins, and a paired
bootstrap interval of (model − best baseline) per metric.

One test cutoff cannot tell a 0.005 ROC-AUC gain from the luck of which customers were in the
test set. So the pipeline trains the model again at earlier origins (30 days apart by default,
each with its own point-in-time training cutoffs) and scores every baseline there; this module
turns those scores into, per metric:

- ``model_mean`` and each baseline's mean over the origins;
- ``best_baseline``: the baseline with the best mean (highest, or lowest for Brier, MAE and
  RMSE);
- ``diff_mean`` = model mean − best baseline mean, and ``diff_interval_90``: the 5th and 95th
  percentiles of that difference over paired bootstrap resamples of the customers within each
  origin (:func:`~retention_trainer.evaluation.bootstrap.paired_bootstrap`);
- ``verdict``: ``better`` when the whole interval is on the model's good side of 0, ``worse``
  when it is on the other side, else ``not distinguishable``.

The interval measures customer-sampling noise at these origins; it treats the origins as given
(their customers overlap, and four periods say little about a fifth), so it is a floor on the
uncertainty, not a forecast of next quarter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from retention_trainer.evaluation.bootstrap import (
    HIGHER_IS_BETTER,
    PairedSample,
    ScoredSample,
    batch_metric,
    paired_bootstrap,
)
from retention_trainer.evaluation.metrics import CHURN_METRIC_KEYS, LTV_METRIC_KEYS

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "INTERVAL",
    "ROLLING_METRICS",
    "OriginScores",
    "reading",
    "rolling_summary",
]

BOOTSTRAP_RESAMPLES = 1000
INTERVAL = 0.9
ROLLING_METRICS: dict[str, tuple[str, ...]] = {
    "churn": (*CHURN_METRIC_KEYS, "roc_auc_active_365d", "ece"),
    "ltv": LTV_METRIC_KEYS,
}
MODEL = "model"


@dataclass(frozen=True)
class OriginScores:
    """Everything scored at one test origin of one task: ``actual`` (``churned`` 0/1 or
    ``future_spend``) and, per scorer (``"model"`` and each baseline, same customers), the
    scores; for churn, each scorer's validation-chosen threshold and the active customers."""

    origin: date
    actual: NDArray[np.float64]
    scores: dict[str, NDArray[np.float64]]
    thresholds: dict[str, float] = field(default_factory=dict)
    active: NDArray[np.bool_] | None = None
    # The customers the bootstrap resamples (None: all of them); the point values always use
    # all. Set above the evaluation cap (docs/trainer.md, "Customer sampling").
    resampled: NDArray[np.bool_] | None = None

    def samples(self) -> dict[str, ScoredSample]:
        return {
            name: ScoredSample(self.actual, s, self.thresholds.get(name), self.active)
            for name, s in self.scores.items()
        }

    def bootstrap_samples(self) -> dict[str, ScoredSample]:
        """What the bootstrap resamples: ``samples()`` on the ``resampled`` customers only."""
        if self.resampled is None:
            return self.samples()
        keep = np.asarray(self.resampled, dtype=bool)
        if keep.shape != self.actual.shape:
            raise ValueError("resampled must flag each of the origin's customers")
        active = self.active[keep] if self.active is not None else None
        return {
            name: ScoredSample(self.actual[keep], s[keep], self.thresholds.get(name), active)
            for name, s in self.scores.items()
        }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _best(means: dict[str, float], higher_is_better: bool) -> str | None:
    defined = {name: m for name, m in means.items() if math.isfinite(m)}
    if not defined:
        return None
    pick = max if higher_is_better else min
    return pick(defined, key=lambda name: defined[name])


def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "undefined"
    better, worse = (low > 0, high < 0) if higher_is_better else (high < 0, low > 0)
    return "better" if better else "worse" if worse else "not distinguishable"


def _task_summary(
    origins: Sequence[OriginScores], metrics: Sequence[str], resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    samples = [o.samples() for o in origins]
    ones = [np.ones(o.actual.size) for o in origins]
    # Point values per origin: the batch metric on the unresampled customers, which equals the
    # scalar metric of `evaluation.metrics` (NaN where it would raise).
    values = {
        m: {
            name: [
                float(batch_metric(m, s[name], w)[0]) for s, w in zip(samples, ones, strict=True)
            ]
            for name in origins[0].scores
        }
        for m in metrics
    }
    summary: dict[str, dict[str, Any]] = {}
    resampled = [o.bootstrap_samples() for o in origins]
    pairs: list[dict[str, PairedSample]] = [{} for _ in origins]
    for m in metrics:
        means = {name: _mean(v) for name, v in values[m].items()}
        model_mean = means.pop(MODEL)
        best = _best(means, HIGHER_IS_BETTER[m])
        summary[m] = {
            "model_mean": model_mean,
            "model_by_origin": values[m][MODEL],
            "baselines": means,
            "best_baseline": best,
            "higher_is_better": HIGHER_IS_BETTER[m],
        }
        if best is not None:
            for o, s in enumerate(resampled):
                pairs[o][m] = PairedSample(s[MODEL], s[best])
    compared = [m for m in metrics if summary[m]["best_baseline"] is not None]
    draws = paired_bootstrap(compared, pairs, resamples=resamples, seed=seed) if compared else {}
    tail = (1 - INTERVAL) / 2 * 100
    for m in metrics:
        entry = summary[m]
        if m in draws and np.isfinite(draws[m]).any():
            low, high = (float(v) for v in np.nanpercentile(draws[m], [tail, 100 - tail]))
        else:
            low = high = math.nan
        best = entry["best_baseline"]
        entry["diff_mean"] = entry["model_mean"] - entry["baselines"][best] if best else math.nan
        entry["diff_interval_90"] = [low, high]
        entry["verdict"] = _verdict(low, high, entry["higher_is_better"])
    return summary


def rolling_summary(
    tasks: dict[str, Sequence[OriginScores]],
    *,
    origin_every_days: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The report's ``rolling`` block for ``{"churn": [...], "ltv": [...]}`` origins (latest
    first). Every task gets its own stream of ``seed`` so adding a task leaves the other's
    interval unchanged."""
    streams = np.random.SeedSequence(seed).generate_state(len(tasks))
    return {
        "origins": {
            task: [o.origin.isoformat() for o in origins] for task, origins in tasks.items()
        },
        "origin_every_days": origin_every_days,
        "resamples": resamples,
        "seed": seed,
        "interval": INTERVAL,
        "metrics": {
            task: _task_summary(origins, ROLLING_METRICS[task], resamples, int(stream))
            for (task, origins), stream in zip(tasks.items(), streams, strict=True)
            if origins
        },
    }


def reading(task_label: str, metric: str, entry: dict[str, Any]) -> str:
    """One sentence a manager can act on, from one metric's rolling entry."""
    best = entry.get("best_baseline")
    low, high = entry.get("diff_interval_90") or (None, None)
    if best is None or low is None or high is None:
        return f"{task_label} {metric}: no baseline to compare with."
    span = f"[{low:+.3f}, {high:+.3f}]"
    side = "above" if entry["higher_is_better"] else "below"
    verdict = entry.get("verdict")
    if verdict == "better":
        return (
            f"{task_label} {metric}: the model beats the best baseline ({best}): the 90% interval "
            f"of the difference, {span}, is {side} 0."
        )
    if verdict == "worse":
        return (
            f"{task_label} {metric}: the model does worse than the best baseline ({best}): the "
            f"90% interval of the difference, {span}, is on the wrong side of 0."
        )
    return (
        f"{task_label} {metric}: not distinguishable from {best}: the 90% interval of the "
        f"difference, {span}, contains 0."
    )
