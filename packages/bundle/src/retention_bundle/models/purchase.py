"""BG/NBD × Gamma-Gamma on the shared features: the classical expected spend, as a model input.

The registry features determine a customer's BG/NBD summary, so no second feature definition is
needed (docs/architecture.md, principle 2). With ``T`` = ``tenure_days`` (first purchase to the
clock), ``t_x`` = ``tenure_days − recency_days`` (first to last purchase) and
``gap_mean_days = t_x / (occasions − 1)``, the number of repeat purchase occasions is
``x = round(t_x / gap_mean_days)`` (0 with fewer than two occasions). An occasion is a distinct
purchase instant (the feature definition's convention), not a calendar day as in
the trainer's RFM baseline. The Gamma-Gamma mean spend ``z̄`` is taken as the net
``avg_order_value`` (floored at 0), the closest registry quantity.

Parameters are fitted on one cutoff's features (only orders up to that cutoff), so they are
point-in-time like the features; they serialize as plain JSON numbers. Fitting is the trainer's
(`retention_trainer.fitting.purchase`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from retention_bundle.models.bgnbd import BGNBDParams
from retention_bundle.models.gamma_gamma import GammaGammaParams, expected_spend

__all__ = ["PurchaseModel", "purchase_summary"]


def purchase_summary(
    features: pl.DataFrame,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(x, t_x, T, z̄)`` per row of a features frame (see the module docstring)."""
    tenure = features["tenure_days"].to_numpy().astype(float)
    recency = features["recency_days"].to_numpy().astype(float)
    gap = features["gap_mean_days"].to_numpy().astype(float)
    T = np.clip(tenure, 0.0, None)
    t_x = np.clip(tenure - recency, 0.0, T)
    x = np.where(gap > 0, np.round(t_x / np.where(gap > 0, gap, 1.0)), 0.0)
    t_x = np.where(x > 0, t_x, 0.0)
    z = np.clip(features["avg_order_value"].to_numpy().astype(float), 0.0, None)
    return x, t_x, T, z


@dataclass(frozen=True, slots=True)
class PurchaseModel:
    """Fitted BG/NBD and Gamma-Gamma parameters (times in days)."""

    bgnbd: BGNBDParams
    gamma_gamma: GammaGammaParams

    def expected_spend(self, features: pl.DataFrame, horizon_days: float) -> NDArray[np.float64]:
        """E[spend in the next ``horizon_days``] per row, from the registry features."""
        x, t_x, T, z = purchase_summary(features)
        spend = expected_spend(self.bgnbd, self.gamma_gamma, x, t_x, T, z, horizon_days)
        return np.clip(np.nan_to_num(spend, nan=0.0, posinf=0.0), 0.0, None)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {"bgnbd": asdict(self.bgnbd), "gamma_gamma": asdict(self.gamma_gamma)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PurchaseModel:
        return cls(BGNBDParams(**data["bgnbd"]), GammaGammaParams(**data["gamma_gamma"]))
