"""Fitting the LTV regressor (`retention_bundle.models.ltv`, whose docstring has the method):
both point candidates (squared error on ``log1p(spend)`` and Tweedie), each stacked with the
BG/NBD × Gamma-Gamma expected spend on the validation cutoff by a log-link Poisson fit, the one
that scores best on validation kept (:func:`validation_score`), then the 80% interval: the
10%/90% quantile booster and the point as candidate bases, each calibrated by split conformal on
the validation cutoff (:mod:`retention_trainer.fitting.conformal`), the narrower kept. Nothing is
fitted or chosen on the test cutoff."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

from retention_bundle.models.ltv import COVERAGE, INTERVAL, IntervalBase, LTVModel
from retention_bundle.models.purchase import PurchaseModel
from retention_trainer.evaluation.metrics import mae, spearman, top10_capture
from retention_trainer.fitting.conformal import conformal_offsets

__all__ = [
    "LTV_OBJECTIVES",
    "LTVFit",
    "fit_ltv_model",
    "poisson_stack",
    "refit_ltv_model",
    "validation_score",
]

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
_NEWTON_STEPS = 100


@dataclasses.dataclass(frozen=True)
class LTVFit:
    """The chosen model and what the choice saw on the validation cutoff."""

    model: LTVModel
    # Per point candidate: spearman, top10_capture, mae and the combined score.
    validation_by_objective: dict[str, dict[str, float]]
    # Per interval base: coverage and median width on validation after calibration.
    validation_by_interval: dict[str, dict[str, float]]
    # The cutoff the seasonal level was measured at (`retention_trainer.fitting.seasonal`).
    level_cutoff: date | None = None


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


def poisson_stack(u: NDArray, v: NDArray, target: NDArray) -> tuple[float, float, float]:
    """``(w_u, w_v, c)`` of ``E[target] = exp(w_u·u + w_v·v + c)`` by Poisson deviance (Newton's
    method): the log-link fit of a mean, well defined for a target with many zeros."""
    design = np.c_[u, v, np.ones_like(u)]
    y = np.asarray(target, dtype=float)
    beta = np.array([0.0, 0.0, np.log(max(float(y.mean()), 1e-9))])
    ridge = 1e-9 * np.eye(3)
    for _ in range(_NEWTON_STEPS):
        mu = np.exp(np.clip(design @ beta, None, 50.0))
        step = np.linalg.solve(design.T @ (design * mu[:, None]) + ridge, design.T @ (mu - y))
        beta -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return float(beta[0]), float(beta[1]), float(beta[2])


def validation_score(spend: NDArray, predicted: NDArray, baseline: NDArray) -> dict[str, float]:
    """The candidate's validation Spearman, top-10% capture and MAE, and ``score``: the sum of its
    gains over ``baseline`` (BG/NBD × Gamma-Gamma) on each, MAE's as a relative reduction, so that
    ranking, the top customers and size all count."""
    metrics = {
        "spearman": spearman(spend, predicted),
        "top10_capture": top10_capture(spend, predicted),
        "mae": mae(spend, predicted),
    }
    base_mae = mae(spend, baseline)
    metrics["score"] = (
        metrics["spearman"]
        - spearman(spend, baseline)
        + metrics["top10_capture"]
        - top10_capture(spend, baseline)
        + (base_mae - metrics["mae"]) / max(base_mae, 1e-9)
    )
    return metrics


def _calibrated(
    model: LTVModel,
    base: IntervalBase,
    X_valid: NDArray,
    expected_valid: NDArray,
    log_valid: NDArray,
) -> tuple[LTVModel, dict[str, float]]:
    model = dataclasses.replace(model, interval_base=base, interval_offsets=(0.0, 0.0))
    point = model.point_spend(X_valid, expected_valid)
    offsets = conformal_offsets(*model.interval_base_log1p(X_valid, point), log_valid, COVERAGE)
    model = dataclasses.replace(model, interval_offsets=offsets)
    _, low, high = model.predict(X_valid, expected_valid)
    spend = np.expm1(log_valid)
    inside = (spend >= low) & (spend <= high)
    return model, {"coverage": float(inside.mean()), "median_width": float(np.median(high - low))}


def fit_ltv_model(
    X_train: NDArray,
    spend_train: NDArray,
    X_valid: NDArray,
    spend_valid: NDArray,
    expected_spend_valid: NDArray,
    purchase_model: PurchaseModel,
    horizon_days: int,
) -> LTVFit:
    """Fit both point candidates and the quantile booster, stack and calibrate on validation."""
    y_train = np.clip(np.asarray(spend_train, dtype=float), 0.0, None)
    y_valid = np.clip(np.asarray(spend_valid, dtype=float), 0.0, None)
    log_valid = np.log1p(y_valid)
    bgnbd_valid = np.log1p(expected_spend_valid)
    interval = _train(_QUANTILE_PARAMS, X_train, np.log1p(y_train), X_valid, log_valid)
    best: LTVModel | None = None
    by_objective: dict[str, dict[str, float]] = {}
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
            objective, booster, interval, (1.0, 0.0, 0.0), purchase_model, horizon_days, "log"
        )
        stack = poisson_stack(candidate.tree_log1p(X_valid), bgnbd_valid, y_valid)
        candidate = dataclasses.replace(candidate, stack=stack)
        point = candidate.point_spend(X_valid, expected_spend_valid)
        by_objective[objective] = validation_score(y_valid, point, expected_spend_valid)
        if best is None or by_objective[objective]["score"] > by_objective[best.objective]["score"]:
            best = candidate
    assert best is not None
    by_interval: dict[str, dict[str, float]] = {}
    chosen: LTVModel | None = None
    for base in ("quantiles", "point"):
        calibrated, by_interval[base] = _calibrated(
            best, base, X_valid, expected_spend_valid, log_valid
        )
        narrowest = chosen is None or (
            by_interval[base]["median_width"] < by_interval[chosen.interval_base]["median_width"]
        )
        if narrowest:
            chosen = calibrated
    assert chosen is not None
    return LTVFit(chosen, by_objective, by_interval)


def refit_ltv_model(
    model: LTVModel, X_train: NDArray, spend_train: NDArray, purchase_model: PurchaseModel
) -> LTVModel:
    """The same model on other training rows, with no new selection: the objective chosen on the
    validation cutoff, its point and interval boosters with the same parameters for the numbers
    of rounds early stopping chose, the stack, link and conformal offsets kept (the refit has no
    held-out rows to recalibrate on), and ``purchase_model`` (fitted on everything known at the
    latest date) in place of the old one."""
    y_train = np.clip(np.asarray(spend_train, dtype=float), 0.0, None)
    X = xgb.DMatrix(np.asarray(X_train, dtype=np.float32))
    X.set_label(np.log1p(y_train))
    interval = xgb.train(_QUANTILE_PARAMS, X, model.interval.num_boosted_rounds())
    if model.objective != "log1p_squared_error":
        X.set_label(y_train)
    point = xgb.train(LTV_OBJECTIVES[model.objective], X, model.point.num_boosted_rounds())
    return dataclasses.replace(model, point=point, interval=interval, purchase_model=purchase_model)
