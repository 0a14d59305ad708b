"""Fitting the churn classifier (`retention_bundle.models.churn`): XGBoost early-stopped on the
validation cutoff's ROC-AUC, a logistic regression on the same features, the stacked Platt
calibration and the F1 threshold, all chosen on the validation cutoff (the model's docstring has
the method)."""

from __future__ import annotations

import dataclasses

import numpy as np
import xgboost as xgb
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from retention_bundle.models.churn import ChurnModel, LinearChurnModel, signed_log1p
from retention_trainer.evaluation.metrics import select_threshold

__all__ = ["CHURN_XGB_PARAMS", "fit_churn_model", "refit_churn_model"]

CHURN_XGB_PARAMS: dict[str, object] = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "eta": 0.05,
    "max_depth": 3,
    "min_child_weight": 10,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
    "nthread": 2,
    "seed": 0,
}
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50


def _fit_linear(X: NDArray, y: NDArray) -> LinearChurnModel:
    transformed = signed_log1p(X)
    means = transformed.mean(axis=0)
    scales = transformed.std(axis=0)
    # A feature constant over the training rows (the clock's season when every training cutoff
    # falls in one month) has a spread of float noise; dividing by it would blow the validation
    # rows up to huge margins. It carries no information here: standardize it by 1.
    scales = np.where(scales > 1e-9 * np.maximum(np.abs(means), 1.0), scales, 1.0)
    fitted = LogisticRegression(max_iter=3000).fit((transformed - means) / scales, y)
    return LinearChurnModel(
        means, scales, fitted.coef_[0].astype(float), float(fitted.intercept_[0])
    )


def fit_churn_model(
    X_train: NDArray, y_train: NDArray, X_valid: NDArray, y_valid: NDArray
) -> ChurnModel:
    """Fit on the training cutoffs; early-stop, stack, calibrate and pick the threshold on the
    validation cutoff (see the module docstring)."""
    train = xgb.DMatrix(np.asarray(X_train, dtype=np.float32), label=y_train)
    valid = xgb.DMatrix(np.asarray(X_valid, dtype=np.float32), label=y_valid)
    fitted = xgb.train(
        CHURN_XGB_PARAMS,
        train,
        MAX_ROUNDS,
        evals=[(valid, "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    # Keep exactly the best rounds, so a saved booster predicts what was validated.
    booster = fitted[: fitted.best_iteration + 1]
    linear = _fit_linear(X_train, y_train)
    partial = ChurnModel(booster, linear, (1.0, 0.0, 0.0), 0.5)
    m_xgb, m_linear = partial.margins(X_valid)
    stacker = LogisticRegression(C=1e6, max_iter=1000).fit(np.c_[m_xgb, m_linear], y_valid)
    a, b = (float(v) for v in stacker.coef_[0])
    stack = (a, b, float(stacker.intercept_[0]))
    calibrated = ChurnModel(booster, linear, stack, 0.5)
    threshold = select_threshold(y_valid, calibrated.probability(X_valid))
    return ChurnModel(booster, linear, stack, threshold)


def refit_churn_model(model: ChurnModel, X_train: NDArray, y_train: NDArray) -> ChurnModel:
    """The same model on other training rows, with no new selection: XGBoost with the same
    parameters for the number of rounds early stopping chose, the logistic regression refitted,
    and the stack, calibration and threshold chosen on the validation cutoff kept."""
    train = xgb.DMatrix(np.asarray(X_train, dtype=np.float32), label=y_train)
    booster = xgb.train(CHURN_XGB_PARAMS, train, model.booster.num_boosted_rounds())
    return dataclasses.replace(model, booster=booster, linear=_fit_linear(X_train, y_train))
