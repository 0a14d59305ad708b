"""What a served churn model's scores turned out to be worth, once their horizon passed (no I/O).

A champion scores customers from the day its run's data ended (`data_end`); its scores of a day
``d`` are settled once the lake holds orders through ``d + horizon``. Its *score dates* are
``data_end``, then every `every_days` after it (the bundle's cutoff spacing). For one of them the
monitor rebuilds what the model saw — the shared features at that date, point in time, as the
trainer builds training sets — scores them with the bundle, labels each customer from the orders
after it (churned = no purchase within the horizon), and measures the realized ROC-AUC and Brier
score. Compared with the ROC-AUC the model's backtest promised, a relative drop over
`RETENTION_OUTCOME_AUC_DROP` means the model no longer ranks customers as it was judged to.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from retention_bundle.bundle import ModelBundle
from retention_trainer.evaluation.metrics import brier, roc_auc
from retention_trainer.training_set import training_examples

__all__ = ["RealizedOutcome", "auc_drop", "latest_score_date", "realized_churn_outcome"]


@dataclass(frozen=True)
class RealizedOutcome:
    """The realized churn metrics of one model's scores of one date."""

    score_date: date
    horizon_days: int
    customers: int
    churners: int
    # NaN when every customer churned or none did (ROC-AUC needs both).
    roc_auc: float
    brier: float

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["score_date"] = self.score_date.isoformat()
        return found


def latest_score_date(
    data_end: date, last_order: datetime | None, horizon_days: int, every_days: int
) -> date | None:
    """The latest score date (``data_end + k·every_days``) whose horizon the lake has reached
    (its last order occurred at `last_order`), or None while even ``data_end``'s has not."""
    if last_order is None:
        return None
    settled = last_order.astimezone(UTC).date() - timedelta(days=horizon_days)
    if settled < data_end:
        return None
    return data_end + timedelta(days=(settled - data_end).days // every_days * every_days)


def realized_churn_outcome(
    bundle: ModelBundle, orders: pl.DataFrame, score_date: date
) -> RealizedOutcome:
    """The bundle's churn scores of `score_date` against what happened in the horizon after it.

    Customers are those with a purchase at or before the date, as in training; CPU-bound."""
    horizon = bundle.windows.churn.horizon_days
    examples = training_examples(
        orders, [score_date], churn_horizon_days=horizon, ltv_horizon_days=horizon
    )
    if examples.is_empty():
        raise ValueError(f"no customer had purchased by {score_date}")
    probability = bundle.churn.probability(bundle.matrix(examples))
    churned = examples["churned"].to_numpy()
    churners = int(churned.sum())
    both = 0 < churners < churned.size
    return RealizedOutcome(
        score_date=score_date,
        horizon_days=horizon,
        customers=int(churned.size),
        churners=churners,
        roc_auc=roc_auc(churned, probability) if both else math.nan,
        brier=brier(churned, probability),
    )


def auc_drop(realized: float, expected: float) -> float:
    """Relative drop of the realized ROC-AUC below the backtest's (negative: it did better)."""
    return (expected - realized) / expected
