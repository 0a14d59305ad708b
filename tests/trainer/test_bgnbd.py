"""BG/NBD: published CDNOW numbers, and the conditional quantities checked by simulation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from retention_bundle.models.bgnbd import (
    BGNBDParams,
    conditional_expected_purchases,
    probability_alive,
)
from retention_trainer.classical.bgnbd import (
    bgnbd_log_likelihood,
    collapse_summary,
    fit_bgnbd,
    probability_no_purchase,
)
from retention_trainer.classical.maximum_likelihood import minimize_log_parameters

# Fader, Hardie & Lee (2005), "Counting your customers the easy way", CDNOW sample, weeks.
PUBLISHED = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_LOG_LIKELIHOOD = -9582.4


def _arrays(cdnow: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return cdnow["x"].to_numpy(), cdnow["t_x"].to_numpy(), cdnow["T"].to_numpy()


def test_fit_reproduces_the_published_cdnow_parameters(cdnow: pl.DataFrame) -> None:
    x, t_x, T = _arrays(cdnow)
    assert len(x) == 2357

    fit = fit_bgnbd(x, t_x, T)

    assert fit.converged
    assert fit.n_customers == 2357
    got = fit.params
    assert got.r == pytest.approx(PUBLISHED.r, abs=1e-3)
    assert got.alpha == pytest.approx(PUBLISHED.alpha, abs=1e-3)
    assert got.a == pytest.approx(PUBLISHED.a, abs=1e-3)
    assert got.b == pytest.approx(PUBLISHED.b, abs=1e-3)
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.05)


def test_the_fit_on_distinct_rows_is_the_fit_on_every_customer(cdnow: pl.DataFrame) -> None:
    x, t_x, T = _arrays(cdnow)
    (ux, utx, uT), share = collapse_summary(x, t_x, T)
    assert 0 < ux.size < x.size  # real customers repeat (x, t_x, T)
    assert share.sum() == pytest.approx(1.0)
    # The share-weighted mean over distinct rows is the mean over customers at any parameters.
    for params in (PUBLISHED, BGNBDParams(r=1.5, alpha=20.0, a=0.3, b=4.0)):
        distinct = [
            bgnbd_log_likelihood(params, [a], [b], [c]) for a, b, c in zip(ux, utx, uT, strict=True)
        ]
        assert float(np.dot(share, distinct)) == pytest.approx(
            bgnbd_log_likelihood(params, x, t_x, T) / x.size, rel=1e-12
        )

    # And the fit lands on the per-customer objective's optimum: the same likelihood, and the
    # parameters as close as the optimizer's stopping rule on this flat top allows.
    def per_customer(log_params: np.ndarray) -> float:
        return -bgnbd_log_likelihood(BGNBDParams(*np.exp(log_params)), x, t_x, T) / x.size

    start = np.log([1.0, float(np.mean(T)), 1.0, 1.0])
    reference = minimize_log_parameters(per_customer, start)
    fitted = fit_bgnbd(x, t_x, T)
    assert fitted.log_likelihood / x.size == pytest.approx(-reference.fun, rel=1e-11)
    p = fitted.params
    assert [p.r, p.alpha, p.a, p.b] == pytest.approx(np.exp(reference.x), rel=1e-4)


def test_log_likelihood_at_the_published_parameters(cdnow: pl.DataFrame) -> None:
    assert bgnbd_log_likelihood(PUBLISHED, *_arrays(cdnow)) == pytest.approx(-9582.4, abs=0.05)


def test_published_individual_prediction() -> None:
    # FHL (2005) worked example: x = 2, t_x = 30.43, T = 38.86 weeks; 39 weeks ahead -> 1.226.
    expected = conditional_expected_purchases(PUBLISHED, [2], [30.43], [38.86], 39.0)
    assert expected[0] == pytest.approx(1.226, abs=2e-3)


def test_fit_is_unit_free_except_for_alpha(cdnow: pl.DataFrame) -> None:
    x, t_x, T = _arrays(cdnow)
    weeks = fit_bgnbd(x, t_x, T).params
    days = fit_bgnbd(x, t_x * 7, T * 7).params
    assert days.alpha == pytest.approx(7 * weeks.alpha, rel=1e-3)
    for name in ("r", "a", "b"):
        assert getattr(days, name) == pytest.approx(getattr(weeks, name), rel=1e-3)


def test_no_purchase_limits() -> None:
    x, t_x, T = np.array([0, 1, 5, 20]), np.array([0, 3.0, 20.0, 38.0]), np.full(4, 39.0)
    assert probability_no_purchase(PUBLISHED, x, t_x, T, 0.0) == pytest.approx(1.0)
    p0 = probability_no_purchase(PUBLISHED, x, t_x, T, 52.0)
    assert np.all((p0 > 0) & (p0 < 1))
    # It shrinks as the horizon grows, towards P(dead) (slowly: the alive term is a power law).
    assert np.all(probability_no_purchase(PUBLISHED, x, t_x, T, 520.0) < p0)
    dead = 1 - probability_alive(PUBLISHED, x, t_x, T)
    forever = probability_no_purchase(PUBLISHED, x, t_x, T, 1e15)
    assert forever == pytest.approx(dead, abs=1e-3)


def test_no_purchase_ranks_one_time_buyers_where_one_minus_alive_cannot() -> None:
    # Three one-time buyers of growing age, and a frequent buyer who just bought.
    x, t_x, T = np.array([0, 0, 0, 10]), np.array([0, 0, 0, 38.0]), np.array([2.0, 20, 39, 39])
    p0 = probability_no_purchase(PUBLISHED, x, t_x, T, 39.0)
    dead = 1 - probability_alive(PUBLISHED, x, t_x, T)
    assert np.all(dead[:3] == 0)  # 1 - P(alive) calls every one-time buyer the safest customer
    assert p0[0] < p0[1] < p0[2]  # the longer the silence, the likelier it continues
    assert p0[3] < p0[0]  # a frequent, recent buyer is the least likely to stay silent


def _simulate(params: BGNBDParams, T: np.ndarray, t: float, seed: int) -> dict[str, np.ndarray]:
    """Draw customers from BG/NBD; observe (0, T], then count purchases in (T, T + t]."""
    rng = np.random.default_rng(seed)
    n = T.size
    rate = np.maximum(rng.gamma(params.r, 1 / params.alpha, n), 1e-300)
    dropout = rng.beta(params.a, params.b, n)
    now, x, t_x, future = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    alive_at_T = np.ones(n, dtype=bool)
    active = np.arange(n)
    while active.size:
        now[active] += rng.exponential(1 / rate[active])
        active = active[now[active] <= T[active] + t]
        observed = now[active] <= T[active]
        x[active[observed]] += 1
        t_x[active[observed]] = now[active[observed]]
        future[active[~observed]] += 1
        dies = rng.random(active.size) < dropout[active]
        alive_at_T[active[dies & observed]] = False
        active = active[~dies]
    return {"x": x, "t_x": t_x, "T": T, "future": future, "alive": alive_at_T}


def _binned(predicted: np.ndarray, actual: np.ndarray, bins: int = 10) -> np.ndarray:
    """(mean predicted, mean actual) in equal-size bins of the predicted value."""
    order = np.argsort(predicted, kind="stable")
    return np.array([(predicted[i].mean(), actual[i].mean()) for i in np.array_split(order, bins)])


@pytest.fixture(scope="module")
def simulated() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return _simulate(PUBLISHED, rng.uniform(27.0, 39.0, 200_000), t=39.0, seed=11)


def test_probability_no_purchase_matches_simulation(simulated: dict[str, np.ndarray]) -> None:
    s = simulated
    p0 = probability_no_purchase(PUBLISHED, s["x"], s["t_x"], s["T"], 39.0)
    silent = (s["future"] == 0).astype(float)
    # E[1{no purchase} | data] = P0(data), so it holds on average within any bin of the data.
    assert silent.mean() == pytest.approx(p0.mean(), abs=3e-3)
    for predicted, actual in _binned(p0, silent):
        assert actual == pytest.approx(predicted, abs=0.015)
    # Among repeat buyers too, where dying and staying silent mix.
    repeat = s["x"] > 0
    for predicted, actual in _binned(p0[repeat], silent[repeat], bins=5):
        assert actual == pytest.approx(predicted, abs=0.02)


def test_probability_alive_matches_simulation(simulated: dict[str, np.ndarray]) -> None:
    s = simulated
    repeat = s["x"] > 0
    alive = probability_alive(PUBLISHED, s["x"], s["t_x"], s["T"])
    assert np.all(alive[~repeat] == 1) and np.all(s["alive"][~repeat])
    for predicted, actual in _binned(alive[repeat], s["alive"][repeat].astype(float), bins=5):
        assert actual == pytest.approx(predicted, abs=0.02)


def test_expected_purchases_match_simulation(simulated: dict[str, np.ndarray]) -> None:
    s = simulated
    expected = conditional_expected_purchases(PUBLISHED, s["x"], s["t_x"], s["T"], 39.0)
    assert s["future"].mean() == pytest.approx(expected.mean(), rel=0.03)
    for predicted, actual in _binned(expected, s["future"], bins=5)[2:]:
        assert actual == pytest.approx(predicted, rel=0.06)


def test_fit_recovers_simulated_parameters(simulated: dict[str, np.ndarray]) -> None:
    s = {k: v[:50_000] for k, v in simulated.items()}
    got = fit_bgnbd(s["x"], s["t_x"], s["T"]).params
    assert got.r == pytest.approx(PUBLISHED.r, rel=0.05)
    assert got.alpha == pytest.approx(PUBLISHED.alpha, rel=0.1)
    assert got.a / (got.a + got.b) == pytest.approx(
        PUBLISHED.a / (PUBLISHED.a + PUBLISHED.b), rel=0.1
    )


def test_large_frequencies_stay_finite() -> None:
    x, t_x, T = np.array([500.0, 2000.0]), np.array([360.0, 364.0]), np.array([365.0, 365.0])
    params = BGNBDParams(r=0.7, alpha=60.0, a=0.5, b=5.0)
    assert np.isfinite(bgnbd_log_likelihood(params, x, t_x, T))
    for values in (
        probability_alive(params, x, t_x, T),
        probability_no_purchase(params, x, t_x, T, 90.0),
        conditional_expected_purchases(params, x, t_x, T, 90.0),
    ):
        assert np.all(np.isfinite(values))


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([1.5], [1.0], [2.0], "whole numbers"),
        ([1], [3.0], [2.0], "t_x"),
        ([-1], [0.0], [2.0], "x must be >= 0"),
        ([1], [np.nan], [2.0], "t_x must be finite"),
    ],
)
def test_invalid_inputs_raise(x: list, t_x: list, T: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        probability_alive(PUBLISHED, x, t_x, T)


def test_fit_needs_a_repeat_buyer() -> None:
    with pytest.raises(ValueError, match="repeat purchase"):
        fit_bgnbd([0, 0], [0, 0], [5, 6])
    with pytest.raises(ValueError, match="at least one customer"):
        fit_bgnbd([], [], [])


def test_params_must_be_positive() -> None:
    with pytest.raises(ValueError, match="alpha"):
        BGNBDParams(r=1.0, alpha=0.0, a=1.0, b=1.0)


# Independent implementation: lifetimes 0.11.3 (BetaGeoFitter on this CDNOW file), run once in a
# throwaway venv outside the repository; its fitted parameters and predictions, 39 weeks ahead.
LIFETIMES_PARAMS = BGNBDParams(
    r=0.2425929282798216, alpha=4.4135322652718125, a=0.7928859664406493, b=2.42575238262571
)
CASES_X, CASES_T_X, CASES_T = np.array([0, 2, 7, 20]), np.array([0, 30.43, 35.0, 38.0]), 38.86
LIFETIMES_EXPECTED = [0.1947808579394768, 1.2259104241744159, 4.387529317801155, 13.42606958118241]
LIFETIMES_ALIVE = [1.0, 0.72660913679906, 0.8437869076230673, 0.9473661093885472]


def test_matches_lifetimes(cdnow: pl.DataFrame) -> None:
    fit = fit_bgnbd(*_arrays(cdnow)).params
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(LIFETIMES_PARAMS, name), rel=1e-4)
    x, t_x, T = CASES_X, CASES_T_X, np.full(4, CASES_T)
    expected = conditional_expected_purchases(LIFETIMES_PARAMS, x, t_x, T, 39.0)
    assert expected == pytest.approx(LIFETIMES_EXPECTED, rel=1e-10)
    assert probability_alive(LIFETIMES_PARAMS, x, t_x, T) == pytest.approx(LIFETIMES_ALIVE)
