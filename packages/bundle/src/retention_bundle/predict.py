"""Scoring and explaining with a bundle: per customer (a row of the shared feature definition's
frame), the calibrated churn probability, the LTV with its interval, the segment and its action,
and each feature's contribution to the churn log-odds."""

from __future__ import annotations

import numpy as np
import polars as pl

from retention_bundle.bundle import ModelBundle

__all__ = ["churn_contributions", "score"]

KEY = ["tenant_id", "customer_id"]


def score(bundle: ModelBundle, features: pl.DataFrame) -> pl.DataFrame:
    """Scores per row of a features frame (``compute_features`` output or any frame holding the
    schema's columns): ``churn_probability`` (calibrated), ``churn_flag`` (>= threshold),
    ``ltv``, ``ltv_low``, ``ltv_high`` (spend over the LTV horizon), ``segment``, ``action``.
    Key columns present in ``features`` are kept in front."""
    X = bundle.matrix(features)
    probability = bundle.churn.probability(X)
    expected = bundle.ltv.purchase_model.expected_spend(features, bundle.ltv.horizon_days)
    point, low, high = bundle.ltv.predict(X, expected)
    segments = bundle.segmenter.assign(features)
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
