"""The baselines every backtest reports, on the same test customers as the models.

Churn (higher = more likely to churn):

- ``recency``: ``recency_days`` alone (a ranking; its Brier score uses the ranks scaled to
  [0, 1], and its F1 threshold is the validation one on that same scale);
- ``rfm_logistic``: logistic regression on standardized ``log1p`` recency, frequency and
  monetary, trained on the training cutoffs, threshold on validation;
- ``bgnbd``: BG/NBD P(no purchase within the horizon), fitted at the cutoff on
  :func:`~retention_trainer.classical.rfm.rfm_summary` (purchase days), threshold on validation.

LTV:

- ``past_spend_scaled``: ``monetary / max(tenure_days, 1) × horizon``;
- ``bgnbd_gamma_gamma``: BG/NBD expected purchases × Gamma-Gamma expected spend, fitted at the
  cutoff on the ``rfm_summary``;
- ``recent_spend``: a retailer's first guess, "the next ``horizon`` days bring what the last
  ``horizon`` days brought": net spend (purchases plus negative cancellations) in
  ``(cutoff − horizon, cutoff]``, 0 for a customer without orders there.

Expected orders (over the churn horizon) and the next-order date:

- ``bgnbd``: BG/NBD conditional expected purchases (FHL 2005 eq. 10) and the 50% point of its
  time to the next purchase, fitted at the cutoff on the ``rfm_summary`` (purchase days).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression

from retention_bundle.models.bgnbd import conditional_expected_purchases
from retention_bundle.models.gamma_gamma import expected_spend
from retention_bundle.models.orders import median_days_to_order
from retention_trainer.classical.bgnbd import fit_bgnbd, probability_no_purchase
from retention_trainer.classical.gamma_gamma import fit_gamma_gamma
from retention_trainer.classical.rfm import rfm_summary
from retention_trainer.training_set import cutoff_instant

__all__ = [
    "bgnbd_churn_scores",
    "bgnbd_orders",
    "bgnbd_spend",
    "past_spend_scaled",
    "recency_scores",
    "recent_spend",
    "rfm_logistic_scores",
]

_RFM = ["recency_days", "frequency", "monetary"]


def _rfm_design(frame: pl.DataFrame) -> NDArray[np.float64]:
    return np.log1p(np.clip(frame.select(_RFM).to_numpy().astype(float), 0, None))


def recency_scores(frame: pl.DataFrame) -> NDArray[np.float64]:
    """Recency ranks scaled to [0, 1]."""
    ranks = rankdata(frame["recency_days"].to_numpy(), method="average")
    return (ranks - 1) / max(len(ranks) - 1, 1)


def rfm_logistic_scores(train: pl.DataFrame, *frames: pl.DataFrame) -> list[NDArray[np.float64]]:
    design = _rfm_design(train)
    means, scales = design.mean(axis=0), design.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    model = LogisticRegression(max_iter=1000).fit((design - means) / scales, train["churned"])
    return [model.predict_proba((_rfm_design(f) - means) / scales)[:, 1] for f in frames]


def _summary_frame(orders: pl.DataFrame, cutoff: date) -> tuple[pl.DataFrame, object]:
    summary = rfm_summary(orders, cutoff_instant(cutoff))
    frame = pl.DataFrame(
        {
            "customer_id": summary.customer_id.astype(str),
            "x": summary.x,
            "t_x": summary.t_x,
            "T": summary.T,
            "mean_spend": summary.mean_spend,
        }
    )
    return frame, summary


def _aligned(frame: pl.DataFrame, scores: pl.DataFrame, column: str, fill: float) -> NDArray:
    joined = frame.select("customer_id").join(scores, on="customer_id", how="left")
    return joined[column].fill_null(fill).to_numpy().astype(float)


def bgnbd_churn_scores(
    orders: pl.DataFrame, cutoff: date, frame: pl.DataFrame, horizon_days: int
) -> NDArray[np.float64]:
    """BG/NBD P(no purchase in the horizon) for ``frame``'s customers, fitted at ``cutoff``."""
    summary_frame, s = _summary_frame(orders, cutoff)
    params = fit_bgnbd(s.x, s.t_x, s.T).params
    scores = summary_frame.select(
        "customer_id",
        p=pl.Series(probability_no_purchase(params, s.x, s.t_x, s.T, horizon_days)),
    )
    return np.clip(_aligned(frame, scores, "p", 1.0), 0.0, 1.0)


def bgnbd_spend(
    orders: pl.DataFrame, cutoff: date, frame: pl.DataFrame, horizon_days: int
) -> NDArray[np.float64]:
    summary_frame, s = _summary_frame(orders, cutoff)
    bgnbd = fit_bgnbd(s.x, s.t_x, s.T).params
    gamma_gamma = fit_gamma_gamma(s.x, s.mean_spend).params
    spend = expected_spend(bgnbd, gamma_gamma, s.x, s.t_x, s.T, s.mean_spend, horizon_days)
    scores = summary_frame.select("customer_id", e=pl.Series(np.nan_to_num(spend)))
    return _aligned(frame, scores, "e", 0.0)


def bgnbd_orders(
    orders: pl.DataFrame, cutoff: date, frame: pl.DataFrame, horizon_days: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """BG/NBD expected purchases in the horizon and days to the 50% point of the next purchase
    (NaN: none within a year) for ``frame``'s customers, fitted at ``cutoff``."""
    summary_frame, s = _summary_frame(orders, cutoff)
    params = fit_bgnbd(s.x, s.t_x, s.T).params
    scores = summary_frame.select(
        "customer_id",
        e=pl.Series(conditional_expected_purchases(params, s.x, s.t_x, s.T, horizon_days)),
        d=pl.Series(median_days_to_order(params, s.x, s.t_x, s.T), nan_to_null=True),
    )
    expected = _aligned(frame, scores, "e", 0.0)
    joined = frame.select("customer_id").join(scores, on="customer_id", how="left")
    return expected, joined["d"].cast(pl.Float64).fill_null(np.nan).to_numpy()


def past_spend_scaled(frame: pl.DataFrame, horizon_days: int) -> NDArray[np.float64]:
    monetary = frame["monetary"].to_numpy().astype(float)
    tenure = np.maximum(frame["tenure_days"].to_numpy().astype(float), 1.0)
    return monetary / tenure * horizon_days


def recent_spend(
    orders: pl.DataFrame, cutoff: date, frame: pl.DataFrame, horizon_days: int
) -> NDArray[np.float64]:
    """Net spend of ``frame``'s customers in the ``horizon_days`` before the cutoff's instant:
    orders with ``occurred_at`` in ``(instant − horizon, instant]`` (the windows of the
    ``spend_<N>d`` features), totals summed with their sign."""
    instant = cutoff_instant(cutoff)
    start = instant - timedelta(days=horizon_days)
    spend = (
        orders.lazy()
        .filter(pl.col("occurred_at") > start, pl.col("occurred_at") <= instant)
        .group_by("tenant_id", "customer_id")
        .agg(spend=pl.col("total").sum())
    )
    joined = (
        frame.lazy()
        .select("tenant_id", "customer_id")
        .join(spend, on=["tenant_id", "customer_id"], how="left", maintain_order="left")
    )
    return joined.collect()["spend"].fill_null(0.0).to_numpy().astype(float)
