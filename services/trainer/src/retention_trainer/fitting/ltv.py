"""Fitting the LTV regressor (`retention_bundle.models.ltv`): both point candidates (squared error
on ``log1p(spend)`` and Tweedie), each stacked with the BG/NBD × Gamma-Gamma expected spend on the
validation cutoff, the better one kept, and the 10%–90% quantile booster (the model's docstring
has the method)."""

from __future__ import annotations

import dataclasses

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from retention_bundle.models.ltv import INTERVAL, LTVModel
from retention_bundle.models.purchase import PurchaseModel
from retention_trainer.evaluation.metrics import spearman

__all__ = ["LTV_OBJECTIVES", "fit_ltv_model", "refit_ltv_model"]

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
        stack = _stack(candidate.tree_log1p(X_valid), bgnbd_valid, log_valid)
        candidate = LTVModel(objective, booster, interval, stack, purchase_model, horizon_days)
        point, _, _ = candidate.predict(X_valid, expected_spend_valid)
        scores[objective] = spearman(spend_valid, point)
        if best is None or scores[objective] > scores[best.objective]:
            best = candidate
    assert best is not None
    return best, scores


def refit_ltv_model(
    model: LTVModel, X_train: NDArray, spend_train: NDArray, purchase_model: PurchaseModel
) -> LTVModel:
    """The same model on other training rows, with no new selection: the objective chosen on the
    validation cutoff, its point and interval boosters with the same parameters for the numbers
    of rounds early stopping chose, the stack kept, and ``purchase_model`` (fitted on everything
    known at the latest date) in place of the old one."""
    y_train = np.clip(np.asarray(spend_train, dtype=float), 0.0, None)
    X = xgb.DMatrix(np.asarray(X_train, dtype=np.float32))
    X.set_label(np.log1p(y_train))
    interval = xgb.train(_QUANTILE_PARAMS, X, model.interval.num_boosted_rounds())
    if model.objective != "log1p_squared_error":
        X.set_label(y_train)
    point = xgb.train(LTV_OBJECTIVES[model.objective], X, model.point.num_boosted_rounds())
    return dataclasses.replace(model, point=point, interval=interval, purchase_model=purchase_model)
