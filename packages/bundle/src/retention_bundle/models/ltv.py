"""The LTV regressor: XGBoost stacked with the BG/NBD × Gamma-Gamma expected spend, plus an 80%
interval calibrated by split conformal on the validation cutoff.

- **XGBoost point model** on the registry features, two candidates: squared error on
  ``log1p(spend)`` and Tweedie (power 1.5) on spend, each early-stopped on the validation cutoff.
  Targets are floored at 0 (a window can net negative through cancellations of older orders).
- **Stack** on the validation cutoff, with a log link fitted by Poisson deviance (``link="log"``):
  ``LTV = exp(w_xgb·u + w_bgnbd·log1p(E_bgnbd) + c)``, where ``u`` is the candidate's prediction
  in ``log1p`` space and ``E_bgnbd`` the expected spend of
  :class:`~retention_bundle.models.purchase.PurchaseModel` fitted at that cutoff. Poisson
  deviance makes the point the conditional *mean* spend (a least-squares fit in ``log1p`` space,
  ``link="log1p"`` in bundles written before, predicts something like a geometric mean: it
  understates the mean of skewed spend and, with ``w_xgb + w_bgnbd > 1``, overshoots the largest
  customers). The trainer keeps the candidate whose stack scores best on validation (Spearman,
  top-10% capture and MAE, each against BG/NBD × Gamma-Gamma). The BG/NBD part is refitted at
  every cutoff and carries the shift between training and scoring cutoffs that trees miss.
- **Seasonal level** (``level``, 1 when unknown): a factor on the point for the season of the
  scoring cutoff's horizon, which the validation cutoff (one horizon earlier) does not share;
  the trainer measures it one year before the scoring cutoff
  (`retention_trainer.fitting.seasonal`).
- **Interval** (``low``, ``high``): a base in ``log1p`` space plus two offsets fitted on the
  validation cutoff by split conformal, so that 10% of validation customers fall below and 10%
  above: ``low = expm1(base_low + offset_low)``, ``high = expm1(base_high + offset_high)``. The
  base is either the ``reg:quantileerror`` booster's 10%/90% quantiles (``"quantiles"``, CQR,
  Romano et al. 2019) or the point itself (``"point"``: offsets are the residual quantiles of
  ``log1p(spend) − log1p(point)``); the trainer keeps the narrower on validation. Bundles written
  before have the quantile base and zero offsets, i.e. the raw booster. Finally
  ``low <= point <= high``.

Scoring needs the two boosters (UBJ) and the stack's and offsets' numbers (JSON); fitting is the
trainer's (`retention_trainer.fitting.ltv`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from retention_bundle.models.purchase import PurchaseModel

__all__ = ["COVERAGE", "INTERVAL", "IntervalBase", "LTVModel", "StackLink"]

# The interval booster's two quantiles (``low``, ``high``), and the coverage they stand for.
INTERVAL = (0.1, 0.9)
COVERAGE = INTERVAL[1] - INTERVAL[0]

StackLink = Literal["log", "log1p"]
IntervalBase = Literal["quantiles", "point"]


@dataclass(frozen=True, slots=True)
class LTVModel:
    objective: str
    point: xgb.Booster
    interval: xgb.Booster
    # (w_xgb, w_bgnbd, intercept) of the stack, on the scale `link` says.
    stack: tuple[float, float, float]
    purchase_model: PurchaseModel
    horizon_days: int
    # "log": LTV = exp(stack); "log1p": LTV = expm1(stack) (bundles before the Poisson stack).
    link: StackLink = "log1p"
    # The interval's base and its conformal offsets in log1p space (zero: uncalibrated).
    interval_base: IntervalBase = "quantiles"
    interval_offsets: tuple[float, float] = (0.0, 0.0)
    # Seasonal level: a factor on the point (and a log shift of the interval) for the season of
    # the scoring cutoff's horizon; 1 when unknown and in bundles before it.
    level: float = 1.0

    def tree_log1p(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """The point booster's prediction in ``log1p`` space (``u`` of the stack)."""
        raw = self.point.inplace_predict(np.asarray(X, dtype=np.float32))
        raw = np.asarray(raw, dtype=float)
        return raw if self.objective == "log1p_squared_error" else np.log1p(np.clip(raw, 0, None))

    def point_spend(
        self, X: NDArray[np.float64], expected_spend: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """The stacked point: spend over the horizon."""
        w_xgb, w_bgnbd, intercept = self.stack
        linear = w_xgb * self.tree_log1p(X) + w_bgnbd * np.log1p(expected_spend) + intercept
        if self.link == "log":
            return self.level * np.exp(np.clip(linear, None, 50.0))
        return self.level * np.clip(np.expm1(linear), 0.0, None)

    def interval_base_log1p(
        self, X: NDArray[np.float64], point: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The interval's base (low, high) in ``log1p`` space, before the conformal offsets."""
        if self.interval_base == "point":
            log_point = np.log1p(point)
            return log_point, log_point
        bounds = np.asarray(
            self.interval.inplace_predict(np.asarray(X, dtype=np.float32)), dtype=float
        ).reshape(len(point), -1)
        shift = np.log(self.level)
        return bounds[:, 0] + shift, bounds[:, -1] + shift

    def predict(
        self, X: NDArray[np.float64], expected_spend: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(point, low, high)`` spend over the horizon; ``expected_spend`` is
        ``purchase_model.expected_spend(features, horizon_days)`` for the same rows."""
        point = self.point_spend(X, expected_spend)
        base_low, base_high = self.interval_base_log1p(X, point)
        offset_low, offset_high = self.interval_offsets
        low = np.clip(np.expm1(base_low + offset_low), 0.0, None)
        high = np.clip(np.expm1(base_high + offset_high), 0.0, None)
        return point, np.minimum(low, point), np.maximum(high, point)
