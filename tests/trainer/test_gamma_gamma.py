"""Gamma-Gamma: published CDNOW numbers, the conditional expectation checked by simulation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from retention_bundle.models.bgnbd import BGNBDParams, conditional_expected_purchases
from retention_bundle.models.gamma_gamma import (
    GammaGammaParams,
    conditional_expected_average_spend,
    expected_spend,
)
from retention_trainer.classical.gamma_gamma import fit_gamma_gamma, gamma_gamma_log_likelihood

# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", CDNOW, 946 repeat buyers.
PUBLISHED = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
PUBLISHED_LOG_LIKELIHOOD = -4055.92


def test_fit_reproduces_the_published_cdnow_parameters(cdnow: pl.DataFrame) -> None:
    fit = fit_gamma_gamma(cdnow["x"].to_numpy(), cdnow["zbar"].to_numpy())

    assert fit.converged
    assert fit.n_customers == 946  # only customers with repeat purchases carry spend data
    assert fit.params.p == pytest.approx(PUBLISHED.p, abs=5e-3)
    assert fit.params.q == pytest.approx(PUBLISHED.q, abs=5e-3)
    assert fit.params.gamma == pytest.approx(PUBLISHED.gamma, abs=1e-2)
    # zbar is rounded to cents in the file, hence the loose tolerance on the log-likelihood.
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.02)


def test_log_likelihood_at_the_published_parameters(cdnow: pl.DataFrame) -> None:
    value = gamma_gamma_log_likelihood(PUBLISHED, cdnow["x"].to_numpy(), cdnow["zbar"].to_numpy())
    assert value == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.02)


def test_spend_and_frequency_are_nearly_independent_on_cdnow(cdnow: pl.DataFrame) -> None:
    # The independence assumption behind expected_spend; FHL (2005) report 0.11 on CDNOW.
    repeat = cdnow.filter(pl.col("x") > 0)
    assert np.corrcoef(repeat["x"], repeat["zbar"])[0, 1] == pytest.approx(0.11, abs=0.01)


def test_expected_average_spend_is_a_credibility_weighted_mean() -> None:
    params = PUBLISHED
    population = params.p * params.gamma / (params.q - 1)
    spend = conditional_expected_average_spend(params, [0, 1, 10, 10_000], [999.0, 50, 50, 50])
    assert spend[0] == pytest.approx(population)  # x = 0: z̄ is ignored
    weight = params.p / (params.p + params.q - 1)
    assert spend[1] == pytest.approx((1 - weight) * population + weight * 50)
    assert population < spend[1] < spend[2] < 50  # more purchases, more weight on the own mean
    assert spend[3] == pytest.approx(50, rel=1e-3)


def test_expected_average_spend_matches_simulation() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    nu = rng.gamma(PUBLISHED.q, 1 / PUBLISHED.gamma, n)
    x = rng.integers(1, 8, n).astype(float)
    zbar = rng.gamma(PUBLISHED.p * x, 1 / (nu * x))  # mean of x Gamma(p, nu) transactions
    true_mean = PUBLISHED.p / nu
    predicted = conditional_expected_average_spend(PUBLISHED, x, zbar)
    order = np.argsort(predicted)
    for chunk in np.array_split(order, 5):
        assert true_mean[chunk].mean() == pytest.approx(predicted[chunk].mean(), rel=0.02)


def test_expected_spend_is_purchases_times_average_spend() -> None:
    bgnbd = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    x, t_x, T, zbar = (
        np.array([0, 2, 7]),
        np.array([0, 30.43, 35.0]),
        np.full(3, 38.86),
        np.array([0.0, 22.35, 40.0]),
    )
    got = expected_spend(bgnbd, PUBLISHED, x, t_x, T, zbar, 39.0)
    purchases = conditional_expected_purchases(bgnbd, x, t_x, T, 39.0)
    assert got == pytest.approx(purchases * conditional_expected_average_spend(PUBLISHED, x, zbar))
    assert np.all(got > 0)


def test_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(8)
    n = 20_000
    nu = rng.gamma(PUBLISHED.q, 1 / PUBLISHED.gamma, n)
    x = rng.integers(1, 10, n).astype(float)
    zbar = rng.gamma(PUBLISHED.p * x, 1 / (nu * x))
    got = fit_gamma_gamma(x, zbar).params
    assert got.p == pytest.approx(PUBLISHED.p, rel=0.1)
    assert got.q == pytest.approx(PUBLISHED.q, rel=0.1)
    assert got.p * got.gamma / (got.q - 1) == pytest.approx(
        PUBLISHED.p * PUBLISHED.gamma / (PUBLISHED.q - 1), rel=0.05
    )


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="at least two"):
        fit_gamma_gamma([0, 0, 3], [0.0, 0.0, 10.0])
    with pytest.raises(ValueError, match="mean_spend must be >= 0"):
        conditional_expected_average_spend(PUBLISHED, [1], [-5.0])
    with pytest.raises(ValueError, match="q > 1"):
        conditional_expected_average_spend(GammaGammaParams(p=1, q=0.9, gamma=1), [1], [5.0])


def test_matches_lifetimes(cdnow: pl.DataFrame) -> None:
    # lifetimes 0.11.3 GammaGammaFitter on this file (throwaway venv, outside the repository).
    lifetimes = GammaGammaParams(p=6.248802496079201, q=3.74458846092242, gamma=15.447748064915702)
    fit = fit_gamma_gamma(cdnow["x"].to_numpy(), cdnow["zbar"].to_numpy()).params
    for name in ("p", "q", "gamma"):
        assert getattr(fit, name) == pytest.approx(getattr(lifetimes, name), rel=1e-4)
    spend = conditional_expected_average_spend(lifetimes, [0, 2, 7, 20], [0, 22.35, 40.0, 30.0])
    assert spend == pytest.approx(
        [35.171002152506844, 24.65861618923485, 39.71489151450615, 30.111119651599857], rel=1e-10
    )
