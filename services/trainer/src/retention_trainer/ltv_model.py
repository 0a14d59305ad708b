"""The LTV regressor: XGBoost stacked with the BG/NBD × Gamma-Gamma expected spend, plus a
10%–90% interval from quantile boosters.

- **XGBoost point model** on the registry features, two candidates: squared error on
  ``log1p(spend)`` and Tweedie (power 1.5) on spend, each early-stopped on the validation cutoff.
  Targets are floored at 0 (a window can net negative through cancellations of older orders).
- **Stack** on the validation cutoff, in ``log1p`` space, by least squares:
  ``log1p(LTV) = w_xgb·u + w_bgnbd·log1p(E_bgnbd) + c``, where ``u`` is the candidate's
  prediction in ``log1p`` space and ``E_bgnbd`` the expected spend of
  :class:`~retention_trainer.purchase_model.PurchaseModel` fitted at that cutoff. The candidate
  whose stack has the higher validation Spearman is kept. Trees alone generalize poorly across
  cutoffs (a customer's history length and the season shift between training and test
  cutoffs); the BG/NBD part is refitted at every cutoff and carries that shift.
- **Interval**: one ``reg:quantileerror`` booster with ``quantile_alpha = [0.1, 0.9]`` on
  ``log1p(spend)`` (quantiles commute with the monotone transform), widened when needed so that
  ``low <= point <= high``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from retention_trainer.evaluation.metrics import spearman
from retention_trainer.purchase_model import PurchaseModel

__all__ = ["LTV_OBJECTIVES", "LTVModel", "fit_ltv_model"]

INTERVAL = (0.1, 0.9)
_COMMON = {
    "eta": 0.05,
    "max_depth": 4,
    "min_child_weight": 10,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
    "nthread": 2,
    "seed": 0,
}
LTV_OBJECTIVES: dict[str, dict[str, object]] = {
    "log1p_squared_error": {**_COMMON, "objective": "reg:squarederror", "eval_metric": "rmse"},
    "tweedie": {
        **_COMMON,
        "objective": "reg:tweedie",
        "tweedie_variance_power": 1.5,
        "eval_metric": "tweedie-nloglik@1.5",
    },
}
_QUANTILE_PARAMS = {
    **_COMMON,
    "objective": "reg:quantileerror",
    "quantile_alpha": np.array(INTERVAL),
}
MAX_ROUNDS = 3000
EARLY_STOPPING_ROUNDS = 50


@dataclass(frozen=True, slots=True)
class LTVModel:
    objective: str
    point: xgb.Booster
    interval: xgb.Booster
    # log1p(LTV) = w_xgb * u + w_bgnbd * log1p(E_bgnbd) + intercept
    stack: tuple[float, float, float]
    purchase_model: PurchaseModel
    horizon_days: int

    def _tree_log1p(self, X: NDArray) -> NDArray[np.float64]:
        raw = self.point.inplace_predict(np.asarray(X, dtype=np.float32))
        raw = np.asarray(raw, dtype=float)
        return raw if self.objective == "log1p_squared_error" else np.log1p(np.clip(raw, 0, None))

    def predict(
        self, X: NDArray, expected_spend: NDArray
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(point, low, high)`` spend over the horizon; ``expected_spend`` is
        ``purchase_model.expected_spend(features, horizon_days)`` for the same rows."""
        w_xgb, w_bgnbd, intercept = self.stack
        log_point = w_xgb * self._tree_log1p(X) + w_bgnbd * np.log1p(expected_spend) + intercept
        point = np.clip(np.expm1(log_point), 0.0, None)
        bounds = np.asarray(
            self.interval.inplace_predict(np.asarray(X, dtype=np.float32)), dtype=float
        ).reshape(len(point), -1)
        low = np.clip(np.expm1(bounds[:, 0]), 0.0, None)
        high = np.clip(np.expm1(bounds[:, -1]), 0.0, None)
        return point, np.minimum(low, point), np.maximum(high, point)


def _train(params: dict, X: NDArray, y: NDArray, X_valid: NDArray, y_valid: NDArray) -> xgb.Booster:
    fitted = xgb.train(
        params,
        xgb.DMatrix(np.asarray(X, dtype=np.float32), label=y),
        MAX_ROUNDS,
        evals=[(xgb.DMatrix(np.asarray(X_valid, dtype=np.float32), label=y_valid), "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    return fitted[: fitted.best_iteration + 1]


def _stack(u: NDArray, v: NDArray, target: NDArray) -> tuple[float, float, float]:
    design = np.c_[u, v, np.ones_like(u)]
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(coefficients[0]), float(coefficients[1]), float(coefficients[2])


def fit_ltv_model(
    X_train: NDArray,
    spend_train: NDArray,
    X_valid: NDArray,
    spend_valid: NDArray,
    expected_spend_valid: NDArray,
    purchase_model: PurchaseModel,
    horizon_days: int,
) -> tuple[LTVModel, dict[str, float]]:
    """Fit both candidates, stack each with BG/NBD on validation, keep the better.

    Returns the model and the validation Spearman of each candidate.
    """
    y_train = np.clip(np.asarray(spend_train, dtype=float), 0.0, None)
    y_valid = np.clip(np.asarray(spend_valid, dtype=float), 0.0, None)
    log_valid = np.log1p(y_valid)
    bgnbd_valid = np.log1p(expected_spend_valid)
    interval = _train(_QUANTILE_PARAMS, X_train, np.log1p(y_train), X_valid, log_valid)
    best: LTVModel | None = None
    scores: dict[str, float] = {}
    for objective, params in LTV_OBJECTIVES.items():
        log_target = objective == "log1p_squared_error"
        booster = _train(
            params,
            X_train,
            np.log1p(y_train) if log_target else y_train,
            X_valid,
            log_valid if log_target else y_valid,
        )
        candidate = LTVModel(
            objective, booster, interval, (1.0, 0.0, 0.0), purchase_model, horizon_days
        )
        stack = _stack(candidate._tree_log1p(X_valid), bgnbd_valid, log_valid)
        candidate = LTVModel(objective, booster, interval, stack, purchase_model, horizon_days)
        point, _, _ = candidate.predict(X_valid, expected_spend_valid)
        scores[objective] = spearman(spend_valid, point)
        if best is None or scores[objective] > scores[best.objective]:
            best = candidate
    assert best is not None
    return best, scores
