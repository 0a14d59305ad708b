"""How scored customers are banded and summed per segment, once for every reader of scores.

Scoring's API (`GET /v1/segments`, the `risk_band` of every score) and the trainer's run report
both show these numbers; one definition keeps a report's "at risk" and "revenue at risk by
segment" equal to what scoring answers for the same model and customers.

**Risk bands** (calibrated churn probability p): `low` p < 0.30, `medium` 0.30 ≤ p < 0.60,
`high` p ≥ 0.60. Fixed cut-offs, the same for every tenant and model, so a band means one thing
on every dashboard; the probability itself is calibrated on the tenant's own validation data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from retention_shared.events import RiskBand

__all__ = ["RISK_CUTOFFS", "risk_bands", "segment_table"]

# Lower bounds of medium and high.
RISK_CUTOFFS = (0.30, 0.60)


def risk_bands(probability: np.ndarray) -> np.ndarray:
    names = np.array([RiskBand.LOW.value, RiskBand.MEDIUM.value, RiskBand.HIGH.value], object)
    return names[np.searchsorted(np.asarray(RISK_CUTOFFS), probability, side="right")]


def segment_table(
    scores: pl.DataFrame, monetary: pl.Series, actions: dict[str, str]
) -> list[dict[str, Any]]:
    """Per segment of the model (empty ones too): customers, share of revenue to date, mean churn
    probability, revenue at risk, predicted LTV, and the recommended action; largest revenue at
    risk first. `scores` has `segment`, `churn_probability`, `revenue_at_risk`, `predicted_ltv`;
    `monetary` is each row's net spend to date."""
    frame = scores.with_columns(revenue=monetary.clip(lower_bound=0.0))
    total_revenue = float(frame["revenue"].sum()) or 1.0
    grouped = {
        row["segment"]: row
        for row in frame.group_by("segment")
        .agg(
            customers=pl.len(),
            revenue=pl.col("revenue").sum(),
            mean_churn_probability=pl.col("churn_probability").mean(),
            revenue_at_risk=pl.col("revenue_at_risk").sum(),
            predicted_ltv=pl.col("predicted_ltv").sum(),
        )
        .iter_rows(named=True)
    }
    table = []
    for segment, action in actions.items():
        row = grouped.get(segment)
        table.append(
            {
                "segment": segment,
                "customers": int(row["customers"]) if row else 0,
                "revenue_share": float(row["revenue"]) / total_revenue if row else 0.0,
                "mean_churn_probability": float(row["mean_churn_probability"]) if row else None,
                "revenue_at_risk": float(row["revenue_at_risk"]) if row else 0.0,
                "predicted_ltv": float(row["predicted_ltv"]) if row else 0.0,
                "action": action,
            }
        )
    return sorted(table, key=lambda r: -r["revenue_at_risk"])
