"""Fitting the churn model when a feature is constant over the training rows: the clock's
season when every training cutoff falls in one month (one year of history, or a rolling origin
with a single training cutoff)."""

from __future__ import annotations

import numpy as np

from retention_bundle.models.churn import signed_log1p
from retention_trainer.evaluation.metrics import roc_auc
from retention_trainer.fitting.churn import _fit_linear, fit_churn_model

# September's season_sin: 1,001 copies of it have a float-noise spread (about 1e-16), not 0.
SEPTEMBER = -0.9659258262890683
JUNE = 0.2588190451025207
N = 1001


def _rows(rng: np.random.Generator, season: float) -> tuple[np.ndarray, np.ndarray]:
    recency = rng.exponential(60.0, N)
    churned = (rng.random(N) < 1 / (1 + np.exp(-(recency - 60) / 20))).astype(int)
    return np.c_[recency, np.full(N, season)], churned


def test_the_float_noise_of_a_constant_feature_is_not_its_scale() -> None:
    X, y = _rows(np.random.default_rng(0), JUNE)
    assert 0 < signed_log1p(X[:, 1]).std() < 1e-15  # the trap: not exactly 0
    linear = _fit_linear(X, y)
    assert linear.scales[1] == 1.0
    # Another month at validation moves the margin by a bounded amount, not by 1e16 units.
    other = X.copy()
    other[:, 1] = SEPTEMBER
    assert np.max(np.abs(linear.margin(other) - linear.margin(X))) < 1.0


def test_a_model_trained_in_one_month_still_ranks_another_month() -> None:
    rng = np.random.default_rng(1)
    X_train, y_train = _rows(rng, JUNE)
    X_valid, y_valid = _rows(rng, SEPTEMBER)
    X_test, y_test = _rows(rng, SEPTEMBER)
    model = fit_churn_model(X_train, y_train, X_valid, y_valid)
    assert roc_auc(y_test, model.probability(X_test)) > 0.7
