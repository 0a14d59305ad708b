"""Global feature importance: each feature's mean absolute contribution over the test customers.

The contributions are the ones the reasons of a single score are made of
(`retention_bundle.predict`): for churn, the calibrated log-odds (``a·SHAP_xgb + b·coef·z``);
for LTV, the point booster's contributions in the ``log1p(LTV)`` space of the stack. Their mean
absolute value says how far, on average, a feature moves a customer's score away from the
model's base, whichever way; features are listed largest first.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from retention_bundle.bundle import ModelBundle
from retention_bundle.predict import ltv_contributions

__all__ = ["churn_importance", "ltv_importance", "mean_absolute"]


def mean_absolute(contributions: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """``{feature: mean |contribution|}``, largest first (ties by schema order)."""
    means = np.abs(np.asarray(contributions, dtype=float)).mean(axis=0)
    order = sorted(range(len(names)), key=lambda i: (-means[i], i))
    return {names[i]: float(means[i]) for i in order}


def churn_importance(bundle: ModelBundle, features: pl.DataFrame) -> dict[str, float]:
    per_feature, _ = bundle.churn.contributions(bundle.matrix(features))
    return mean_absolute(per_feature, bundle.feature_names)


def ltv_importance(bundle: ModelBundle, features: pl.DataFrame) -> dict[str, float]:
    return mean_absolute(ltv_contributions(bundle, bundle.matrix(features)), bundle.feature_names)
