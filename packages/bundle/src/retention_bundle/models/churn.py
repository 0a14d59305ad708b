"""The churn classifier: XGBoost and a logistic regression, stacked and calibrated on validation.

- **XGBoost** (``binary:logistic``, depth 3, learning rate 0.05) on the registry features,
  early-stopped on the validation cutoff's ROC-AUC: a ranking criterion, because validation
  log-loss keeps rewarding trees that only track the churn base rate of the training period.
- **Logistic regression** on the same features, each mapped by ``sign(v)·log1p(|v|)`` and
  standardized with the training means and scales.
- **Stacked Platt calibration** on the validation cutoff:
  ``P(churn) = σ(a·m_xgb + b·m_logistic + c)``, with ``m`` each model's log-odds. It calibrates
  and lets validation decide how much the linear model adds (much on small histories, little on
  large ones). It is strictly monotone in each margin and exactly additive, so per-feature
  contributions to the calibrated log-odds are ``a·SHAP_xgb + b·coef·z``.
- **Decision threshold**: the F1-maximizing probability on the validation cutoff.

Everything a scorer needs is numbers (JSON) and one booster (UBJ); no pickle. Fitting is the
trainer's (`retention_trainer.fitting.churn`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray
from scipy.special import expit

__all__ = ["ChurnModel", "LinearChurnModel", "signed_log1p"]


def signed_log1p(values: NDArray[np.float64]) -> NDArray[np.float64]:
    values = np.asarray(values, dtype=float)
    return np.sign(values) * np.log1p(np.abs(values))


@dataclass(frozen=True, slots=True)
class LinearChurnModel:
    """Logistic regression on standardized ``signed_log1p`` features."""

    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    intercept: float

    def standardized(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        return (signed_log1p(X) - self.means) / self.scales

    def margin(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.standardized(X) @ self.coefficients + self.intercept

    def as_dict(self) -> dict[str, object]:
        return {
            "transform": "sign(v)*log1p(|v|), then (v - mean) / scale",
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "coefficients": self.coefficients.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearChurnModel:
        return cls(
            np.asarray(data["means"], dtype=float),
            np.asarray(data["scales"], dtype=float),
            np.asarray(data["coefficients"], dtype=float),
            float(data["intercept"]),
        )


@dataclass(frozen=True, slots=True)
class ChurnModel:
    booster: xgb.Booster
    linear: LinearChurnModel
    # P = σ(a·m_xgb + b·m_linear + c)
    stack: tuple[float, float, float]
    threshold: float

    def margins(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        m_xgb = self.booster.inplace_predict(np.asarray(X, dtype=np.float32), predict_type="margin")
        return np.asarray(m_xgb, dtype=float), self.linear.margin(X)

    def probability(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated churn probability per row of ``X`` (columns in feature-schema order)."""
        a, b, c = self.stack
        m_xgb, m_linear = self.margins(X)
        probability: NDArray[np.float64] = expit(a * m_xgb + b * m_linear + c)
        return probability

    def contributions(
        self, X: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-feature contributions to the calibrated log-odds, and the per-row base value.

        ``contributions.sum(axis=1) + base == logit(probability)`` up to float rounding.
        """
        a, b, c = self.stack
        shap = self.booster.predict(
            xgb.DMatrix(np.asarray(X, dtype=np.float32)), pred_contribs=True
        )
        linear = self.linear.standardized(X) * self.linear.coefficients
        per_feature = a * shap[:, :-1] + b * linear
        base = a * shap[:, -1] + b * self.linear.intercept + c
        return per_feature, base
