"""The LTV regressor: XGBoost stacked with the BG/NBD × Gamma-Gamma expected spend, plus a
10%–90% interval from quantile boosters.

- **XGBoost point model** on the registry features, two candidates: squared error on
  ``log1p(spend)`` and Tweedie (power 1.5) on spend, each early-stopped on the validation cutoff.
  Targets are floored at 0 (a window can net negative through cancellations of older orders).
- **Stack** on the validation cutoff, in ``log1p`` space, by least squares:
  ``log1p(LTV) = w_xgb·u + w_bgnbd·log1p(E_bgnbd) + c``, where ``u`` is the candidate's
  prediction in ``log1p`` space and ``E_bgnbd`` the expected spend of
  :class:`~retention_bundle.models.purchase.PurchaseModel` fitted at that cutoff. The candidate
  whose stack has the higher validation Spearman is kept. Trees alone generalize poorly across
  cutoffs (a customer's history length and the season shift between training and test
  cutoffs); the BG/NBD part is refitted at every cutoff and carries that shift.
- **Interval**: one ``reg:quantileerror`` booster with ``quantile_alpha = [0.1, 0.9]`` on
  ``log1p(spend)`` (quantiles commute with the monotone transform), widened when needed so that
  ``low <= point <= high``.

Scoring needs the two boosters (UBJ) and the stack's numbers (JSON); fitting is the trainer's
(`retention_trainer.fitting.ltv`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from retention_bundle.models.purchase import PurchaseModel

__all__ = ["INTERVAL", "LTVModel"]

# The interval booster's two quantiles (``low``, ``high``).
INTERVAL = (0.1, 0.9)


@dataclass(frozen=True, slots=True)
class LTVModel:
    objective: str
    point: xgb.Booster
    interval: xgb.Booster
    # log1p(LTV) = w_xgb * u + w_bgnbd * log1p(E_bgnbd) + intercept
    stack: tuple[float, float, float]
    purchase_model: PurchaseModel
    horizon_days: int

    def tree_log1p(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """The point booster's prediction in ``log1p`` space (``u`` of the stack)."""
        raw = self.point.inplace_predict(np.asarray(X, dtype=np.float32))
        raw = np.asarray(raw, dtype=float)
        return raw if self.objective == "log1p_squared_error" else np.log1p(np.clip(raw, 0, None))

    def predict(
        self, X: NDArray[np.float64], expected_spend: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(point, low, high)`` spend over the horizon; ``expected_spend`` is
        ``purchase_model.expected_spend(features, horizon_days)`` for the same rows."""
        w_xgb, w_bgnbd, intercept = self.stack
        log_point = w_xgb * self.tree_log1p(X) + w_bgnbd * np.log1p(expected_spend) + intercept
        point = np.clip(np.expm1(log_point), 0.0, None)
        bounds = np.asarray(
            self.interval.inplace_predict(np.asarray(X, dtype=np.float32)), dtype=float
        ).reshape(len(point), -1)
        low = np.clip(np.expm1(bounds[:, 0]), 0.0, None)
        high = np.clip(np.expm1(bounds[:, -1]), 0.0, None)
        return point, np.minimum(low, point), np.maximum(high, point)
