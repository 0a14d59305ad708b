"""Response bodies of the scoring API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from retention_scoring.reasons import Reason
from retention_scoring.scoring import Explanation
from retention_shared.events import RiskBand, ValueTier


class ReasonView(BaseModel):
    feature: str
    text: str
    direction: str  # "raises" or "lowers" the score it explains
    contribution: float  # in the model's margin units (log-odds for churn, log1p(LTV) for LTV)

    @classmethod
    def of(cls, reason: Reason) -> ReasonView:
        return cls(
            feature=reason.feature,
            text=reason.text,
            direction=reason.direction,
            contribution=reason.contribution,
        )


class ReasonsView(BaseModel):
    churn: list[ReasonView]
    ltv: list[ReasonView]

    @classmethod
    def of(cls, explanation: Explanation) -> ReasonsView:
        return cls(
            churn=[ReasonView.of(r) for r in explanation.churn],
            ltv=[ReasonView.of(r) for r in explanation.ltv],
        )


class ScoreView(BaseModel):
    customer_id: str | None
    churn_probability: float
    risk_band: RiskBand
    predicted_ltv: float
    # The 80% interval of the predicted LTV (10% and 90% quantiles) over `ltv_horizon_days`.
    ltv_low: float
    ltv_high: float
    ltv_horizon_days: int
    value_tier: ValueTier
    segment: str
    action: str
    revenue_at_risk: float
    reasons: ReasonsView | None = None
    features_as_of: datetime | None
    model_version: str


def score_view(
    row: dict, explanation: Explanation | None, model_version: str, horizon_days: int
) -> ScoreView:
    return ScoreView(
        customer_id=row.get("customer_id"),
        churn_probability=row["churn_probability"],
        risk_band=RiskBand(row["risk_band"]),
        predicted_ltv=row["predicted_ltv"],
        ltv_low=row["ltv_low"],
        ltv_high=row["ltv_high"],
        ltv_horizon_days=horizon_days,
        value_tier=ValueTier(row["value_tier"]),
        segment=row["segment"],
        action=row["action"],
        revenue_at_risk=row["revenue_at_risk"],
        reasons=ReasonsView.of(explanation) if explanation is not None else None,
        features_as_of=row.get("as_of"),
        model_version=model_version,
    )
