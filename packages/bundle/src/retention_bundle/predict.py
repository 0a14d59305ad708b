"""Scoring and explaining with a bundle: per customer (a row of the shared feature definition's
frame), the calibrated churn probability, the LTV with its interval, the segment and its action,
and each feature's contribution to the churn log-odds."""

from __future__ import annotations

import numpy as np
import polars as pl
import xgboost as xgb

from retention_bundle.bundle import ModelBundle

__all__ = ["churn_contributions", "ltv_contributions", "score"]

KEY = ["tenant_id", "customer_id"]


def score(bundle: ModelBundle, features: pl.DataFrame) -> pl.DataFrame:
    """Scores per row of a features frame (``compute_features`` output or any frame holding the
    schema's columns): ``churn_probability`` (calibrated), ``churn_flag`` (>= threshold),
    ``ltv``, ``ltv_low``, ``ltv_high`` (spend over the LTV horizon), ``segment``, ``action``,
    ``expected_orders`` (purchase orders over the churn horizon) and ``next_order_days`` (days
    from the row's clock until the chance of an order reaches 50%; null when it stays below 50%
    within a year), see :mod:`retention_bundle.models.orders`. Key columns present in ``features`` are kept in front."""
    X = bundle.matrix(features)
    probability = bundle.churn.probability(X)
    expected = bundle.ltv.purchase_model.expected_spend(features, bundle.ltv.horizon_days)
    point, low, high = bundle.ltv.predict(X, expected)
    segments = bundle.segmenter.assign(features)
    forecast = bundle.order_model.forecast(features, X)
    names = np.asarray(bundle.segmenter.names, dtype=object)[segments]
    actions = np.asarray(bundle.segmenter.actions, dtype=object)[segments]
    keys = [c for c in (*KEY, "as_of", "cutoff") if c in features.columns]
    return features.select(keys).with_columns(
        churn_probability=pl.Series(probability, dtype=pl.Float64),
        churn_flag=pl.Series(probability >= bundle.churn.threshold, dtype=pl.Boolean),
        ltv=pl.Series(point, dtype=pl.Float64),
        ltv_low=pl.Series(low, dtype=pl.Float64),
        ltv_high=pl.Series(high, dtype=pl.Float64),
        segment=pl.Series(names.tolist(), dtype=pl.String),
        action=pl.Series(actions.tolist(), dtype=pl.String),
        expected_orders=pl.Series(forecast.expected_orders, dtype=pl.Float64),
        next_order_days=pl.Series(forecast.next_order_days, dtype=pl.Float64, nan_to_null=True),
    )


def churn_contributions(bundle: ModelBundle, features: pl.DataFrame) -> pl.DataFrame:
    """Per-feature contributions to the calibrated churn log-odds (positive = towards churn),
    one column per schema feature plus ``base``; they sum to ``logit(churn_probability)``."""
    per_feature, base = bundle.churn.contributions(bundle.matrix(features))
    keys = [c for c in KEY if c in features.columns]
    return features.select(keys).with_columns(
        *(pl.Series(n, per_feature[:, i]) for i, n in enumerate(bundle.feature_names)),
        base=pl.Series(base),
    )


def ltv_contributions(bundle: ModelBundle, X: np.ndarray) -> np.ndarray:
    """Per-feature contributions of the LTV point booster in the stack's own space, ``log(LTV)``
    (``log1p(LTV)`` for bundles before the Poisson stack; rows of ``X``, columns in schema order):
    ``pred_contribs`` × ``w_xgb``, and for a Tweedie booster × μ/(1+μ), the slope of ``log1p(e^m)`` at the prediction. The BG/NBD part of
    the stack depends on several features at once and is not itemized."""
    ltv = bundle.ltv
    shap = ltv.point.predict(xgb.DMatrix(np.asarray(X, dtype=np.float32)), pred_contribs=True)
    per_feature = shap[:, :-1] * ltv.stack[0]
    if ltv.objective != "log1p_squared_error":  # log link: u = log1p(exp(margin))
        mu = np.exp(shap.sum(axis=1))
        per_feature = per_feature * (mu / (1.0 + mu))[:, None]
    return per_feature
