"""The champion/challenger gate: a new bundle replaces the champion only if it does better on
the new run's own test set.

Both bundles score the same test customers (churn rows at the new churn test cutoff, LTV rows at
the new LTV test cutoff, features from the shared definition); the gate compares churn ROC-AUC
and LTV Spearman. The candidate is promoted when there is no champion, or when it is not worse
on either number and better on at least one. A tie on both keeps the champion: a retrain that
changes nothing should not churn model versions. The champion's training saw nothing after its
own test cutoffs, which are at or before the new ones, so it gets no peek at the new test labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from retention_bundle.bundle import ModelBundle
from retention_bundle.predict import score
from retention_trainer.evaluation.metrics import roc_auc, spearman

__all__ = ["GateDecision", "GateMetrics", "decide", "gate_metrics"]


@dataclass(frozen=True)
class GateMetrics:
    roc_auc: float
    spearman: float

    def as_dict(self) -> dict[str, float]:
        return {"roc_auc": self.roc_auc, "spearman": self.spearman}


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate: GateMetrics
    champion: GateMetrics | None

    def as_dict(self) -> dict[str, object]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "candidate": self.candidate.as_dict(),
            "champion": self.champion.as_dict() if self.champion else None,
        }


def gate_metrics(
    bundle: ModelBundle, churn_test: pl.DataFrame, ltv_test: pl.DataFrame
) -> GateMetrics:
    """The bundle's churn ROC-AUC and LTV Spearman on labelled test examples
    (``churned`` and ``future_spend`` next to the feature columns)."""
    churn = score(bundle, churn_test)["churn_probability"].to_numpy()
    ltv = score(bundle, ltv_test)["ltv"].to_numpy()
    return GateMetrics(
        roc_auc=roc_auc(churn_test["churned"].to_numpy(), churn),
        spearman=spearman(ltv_test["future_spend"].to_numpy(), ltv),
    )


def _compare(candidate: float, champion: float) -> int:
    """-1 worse, 0 equal, 1 better; an undefined number (NaN) is worse than any number."""
    candidate_nan, champion_nan = math.isnan(candidate), math.isnan(champion)
    if candidate_nan or champion_nan:
        return int(champion_nan) - int(candidate_nan)
    return (candidate > champion) - (candidate < champion)


def decide(candidate: GateMetrics, champion: GateMetrics | None) -> GateDecision:
    if champion is None:
        return GateDecision(True, "no champion yet", candidate, None)
    steps = {
        "churn ROC-AUC": _compare(candidate.roc_auc, champion.roc_auc),
        "LTV Spearman": _compare(candidate.spearman, champion.spearman),
    }
    worse = [name for name, step in steps.items() if step < 0]
    better = [name for name, step in steps.items() if step > 0]
    numbers = (
        f"ROC-AUC {candidate.roc_auc:.4f} vs {champion.roc_auc:.4f}, "
        f"Spearman {candidate.spearman:.4f} vs {champion.spearman:.4f}"
    )
    if worse:
        return GateDecision(
            False,
            f"worse than the champion on {' and '.join(worse)} ({numbers})",
            candidate,
            champion,
        )
    if not better:
        return GateDecision(False, f"no better than the champion ({numbers})", candidate, champion)
    return GateDecision(
        True, f"better than the champion on {' and '.join(better)} ({numbers})", candidate, champion
    )
