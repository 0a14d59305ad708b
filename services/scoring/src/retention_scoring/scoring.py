"""Scores with bands, tiers and reasons, from a features frame and a model bundle (no I/O).

**Risk bands** (calibrated churn probability p): `low` p < 0.30, `medium` 0.30 ≤ p < 0.60,
`high` p ≥ 0.60 (`retention_shared.score_summaries`, which the trainer's run report uses too).

**Value tiers** (predicted LTV, by quantiles of the tenant's current population): `Low` below
the median, `Medium` from the median to the 80th percentile, `High` from the 80th to the 95th,
`VIP` the top 5% (at or above the 95th percentile).

**Expected orders and next order** (`retention_bundle.models.orders`): `expected_orders` over the
churn horizon, and `next_order_by`, the date (UTC) by which the customer has a 50% chance of
having ordered again, counted from the features' clock; null when that chance stays below 50%
within a year, and for a raw feature vector, which has no clock.

**Reasons**: the churn model's per-feature contributions to the calibrated log-odds
(`churn_contributions`: XGBoost `pred_contribs` plus the logistic part), and the LTV point
booster's `pred_contribs` scaled into the `log(LTV)` space of the stack (`log1p(LTV)` for bundles
written before the Poisson stack; × `w_xgb`, and for a
Tweedie booster × μ/(1+μ), the slope of log1p(e^m) at the prediction). The BG/NBD part of the LTV
stack is a function of several features at once and is not itemized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from retention_bundle.bundle import ModelBundle
from retention_bundle.predict import churn_contributions, ltv_contributions, score
from retention_scoring.reasons import Reason, baseline_probability, top_reasons
from retention_shared.events import ScoreReason, ScoreReasons, ValueTier
from retention_shared.features import recompute_clock_features
from retention_shared.score_summaries import risk_bands

__all__ = [
    "TIER_QUANTILES",
    "Explanation",
    "TierCutoffs",
    "at_clock",
    "churn_horizon_days",
    "explain",
    "score_customers",
    "tier_cutoffs",
    "value_tiers",
]

# Quantiles of predicted LTV that start Medium, High and VIP.
TIER_QUANTILES = (0.50, 0.80, 0.95)

TierCutoffs = tuple[float, float, float]
SCORE_COLUMNS = (
    "churn_probability",
    "risk_band",
    "predicted_ltv",
    "ltv_low",
    "ltv_high",
    "value_tier",
    "segment",
    "action",
    "revenue_at_risk",
    "expected_orders",
    "next_order_by",
)


def tier_cutoffs(ltv: np.ndarray) -> TierCutoffs:
    """The LTV values where Medium, High and VIP start, for this population."""
    if len(ltv) == 0:
        return (0.0, 0.0, 0.0)
    low, high, vip = np.quantile(np.asarray(ltv, dtype=float), TIER_QUANTILES)
    return (float(low), float(high), float(vip))


def value_tiers(ltv: np.ndarray, cutoffs: TierCutoffs) -> np.ndarray:
    names = np.array([t.value for t in ValueTier], dtype=object)  # Low, Medium, High, VIP
    return names[np.searchsorted(np.asarray(cutoffs), ltv, side="right")]


def at_clock(features: pl.DataFrame, history: pl.DataFrame, clock_us: int) -> pl.DataFrame:
    """`features` with the clock features moved to `clock_us` (never back), rows kept in order.

    A row is moved to max(clock, its own as_of). Rows without a compact history (from producers
    that predate it) keep their values.
    """
    if features.is_empty():
        return features
    clocks = features.select(
        "tenant_id",
        "customer_id",
        as_of=pl.max_horizontal(pl.col("as_of"), pl.lit(clock_us).cast(pl.Datetime("us", "UTC"))),
    )
    stale = clocks["as_of"] != features["as_of"]
    if not stale.any():
        return features
    has_history = features["customer_id"].is_in(history["customer_id"].unique())
    movable = stale & has_history
    if not movable.any():
        return features
    moved = recompute_clock_features(
        features.filter(movable), history, clocks.filter(movable)
    ).select(features.columns)
    order = features.select("customer_id").with_row_index("_row")
    return (
        pl.concat([features.filter(~movable), moved])
        .join(order, on="customer_id")
        .sort("_row")
        .drop("_row")
    )


def score_customers(
    bundle: ModelBundle, features: pl.DataFrame, cutoffs: TierCutoffs | None = None
) -> pl.DataFrame:
    """Key columns, `as_of` and `SCORE_COLUMNS` per row of a features frame (at its clock).

    Without `cutoffs`, value tiers are cut at this frame's own quantiles (whole-tenant scoring).
    """
    scored = score(bundle, features)
    probability = scored["churn_probability"].to_numpy()
    ltv = scored["ltv"].to_numpy()
    cutoffs = tier_cutoffs(ltv) if cutoffs is None else cutoffs
    return scored.select(
        *[c for c in ("tenant_id", "customer_id", "as_of") if c in scored.columns],
        "churn_probability",
        risk_band=pl.Series(risk_bands(probability).tolist(), dtype=pl.String),
        predicted_ltv=pl.col("ltv"),
        ltv_low=pl.col("ltv_low"),
        ltv_high=pl.col("ltv_high"),
        value_tier=pl.Series(value_tiers(ltv, cutoffs).tolist(), dtype=pl.String),
        segment=pl.col("segment"),
        action=pl.col("action"),
        revenue_at_risk=pl.Series(probability * ltv, dtype=pl.Float64),
        expected_orders=pl.col("expected_orders"),
        next_order_by=_next_order_by(scored),
    )


def _next_order_by(scored: pl.DataFrame) -> pl.Expr:
    """The clock plus `next_order_days`, as a UTC date (null without a clock or a date)."""
    if "as_of" not in scored.columns:
        return pl.lit(None, dtype=pl.Date)
    days = (pl.col("next_order_days") * 86_400_000_000).round().cast(pl.Int64)
    return (pl.col("as_of") + pl.duration(microseconds=days)).dt.convert_time_zone("UTC").dt.date()


@dataclass(frozen=True)
class Explanation:
    churn: list[Reason]
    ltv: list[Reason]
    churn_baseline: float | None = None  # the typical customer's churn probability, this clock

    def structured(self) -> ScoreReasons:
        """The reasons as the HTTP score and the `CustomerScore` event both carry them."""
        return ScoreReasons(
            churn=_structured(self.churn),
            ltv=_structured(self.ltv),
            churn_baseline=self.churn_baseline,
        )


def _structured(reasons: list[Reason]) -> list[ScoreReason]:
    return [
        ScoreReason(
            feature=r.feature, text=r.text, direction=r.direction, contribution=r.contribution
        )
        for r in reasons
    ]


def churn_horizon_days(bundle: ModelBundle) -> int:
    """Days without a purchase that the churn label counts as churned (the bundle's training
    windows)."""
    return bundle.windows.churn.horizon_days


def explain(bundle: ModelBundle, features: pl.DataFrame, count: int = 3) -> list[Explanation]:
    """The top `count` churn and LTV drivers per row, in words (see the module docstring)."""
    if features.is_empty():
        return []
    names = bundle.feature_names
    contributions = churn_contributions(bundle, features)
    churn = contributions.select(names).to_numpy()
    base = contributions["base"].to_list()
    ltv = ltv_contributions(bundle, bundle.matrix(features))
    rows = features.to_dicts()
    explanations = []
    for i, row in enumerate(rows):
        drivers = dict(zip(names, churn[i].tolist(), strict=True))
        explanations.append(
            Explanation(
                churn=top_reasons(drivers, row, count),
                ltv=top_reasons(dict(zip(names, ltv[i].tolist(), strict=True)), row, count),
                churn_baseline=baseline_probability(base[i], drivers),
            )
        )
    return explanations
