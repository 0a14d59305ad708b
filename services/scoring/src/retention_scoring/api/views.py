"""Response bodies of the scoring API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from retention_scoring.champions import LoadedChampion
from retention_scoring.scoring import Explanation, churn_horizon_days
from retention_shared.events import RiskBand, ScoreReasons, ValueTier


class ScoreView(BaseModel):
    customer_id: str | None
    churn_probability: float
    risk_band: RiskBand
    predicted_ltv: float
    # The 80% interval of the predicted LTV (10% and 90% quantiles) over `ltv_horizon_days`.
    ltv_low: float
    ltv_high: float
    ltv_horizon_days: int
    # Days without a purchase that count as churned: what `churn_probability` is about (None for
    # a model that does not say).
    churn_horizon_days: int | None = None
    value_tier: ValueTier
    segment: str
    action: str
    revenue_at_risk: float
    # Expected purchase orders over `churn_horizon_days` (None for a model that does not say).
    expected_orders: float | None = None
    # The date (UTC) by which the customer has a 50% chance of having ordered again; None when
    # that chance stays below 50% within a year (or for a raw feature vector, which has no clock).
    next_order_by: date | None = None
    # The same model as the `CustomerScore` event's `drivers` (shared), so the two cannot drift.
    reasons: ScoreReasons | None = None
    features_as_of: datetime | None
    model_version: str


def score_view(row: dict, explanation: Explanation | None, champion: LoadedChampion) -> ScoreView:
    return ScoreView(
        customer_id=row.get("customer_id"),
        churn_probability=row["churn_probability"],
        risk_band=RiskBand(row["risk_band"]),
        predicted_ltv=row["predicted_ltv"],
        ltv_low=row["ltv_low"],
        ltv_high=row["ltv_high"],
        ltv_horizon_days=champion.bundle.ltv.horizon_days,
        churn_horizon_days=churn_horizon_days(champion.bundle),
        value_tier=ValueTier(row["value_tier"]),
        segment=row["segment"],
        action=row["action"],
        revenue_at_risk=row["revenue_at_risk"],
        expected_orders=row.get("expected_orders"),
        next_order_by=row.get("next_order_by"),
        reasons=explanation.structured() if explanation is not None else None,
        features_as_of=row.get("as_of"),
        model_version=champion.version,
    )
