"""The LTV model's parts: the Poisson stack, split-conformal offsets, the validation choice, and
the calibrated interval's coverage on held-out real customers."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from retention_bundle.models.ltv import COVERAGE
from retention_trainer.fitting.conformal import conformal_offsets
from retention_trainer.fitting.ltv import (
    LTVFit,
    fit_ltv_model,
    poisson_stack,
    refit_ltv_model,
    validation_score,
)
from retention_trainer.fitting.purchase import fit_purchase_model
from retention_trainer.fitting.seasonal import seasonal_cutoff, with_seasonal_level
from retention_trainer.pipeline import FEATURES
from retention_trainer.training_set import training_examples
from tests.support.uci_orders import REPO_DATA, load_orders

HORIZON = 90
# Online Retail (I): training cutoffs whose 90-day labels end before the calibration cutoff.
CALIBRATION_CUTOFF = date(2011, 6, 12)
TRAINING_CUTOFFS = tuple(CALIBRATION_CUTOFF - timedelta(days=HORIZON + 30 * k) for k in range(4))


def _X(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(FEATURES).to_numpy().astype(np.float64)


@pytest.fixture(scope="module")
def examples() -> pl.DataFrame:
    orders = load_orders(REPO_DATA / "online_retail.parquet")
    return training_examples(
        orders,
        {*TRAINING_CUTOFFS, CALIBRATION_CUTOFF},
        churn_horizon_days=HORIZON,
        ltv_horizon_days=HORIZON,
    )


@pytest.fixture(scope="module")
def halves(examples: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The calibration cutoff's real customers split at random: one half validates and
    calibrates, the other is held out (exchangeable with it by construction)."""
    at = examples.filter(pl.col("cutoff") == CALIBRATION_CUTOFF)
    order = np.random.default_rng(7).permutation(at.height)
    half = at.height // 2
    return at[order[:half].tolist()], at[order[half:].tolist()]


@pytest.fixture(scope="module")
def fitted(examples: pl.DataFrame, halves: tuple[pl.DataFrame, pl.DataFrame]) -> LTVFit:
    train = examples.filter(pl.col("cutoff").is_in(TRAINING_CUTOFFS))
    valid, _ = halves
    purchase = fit_purchase_model(examples.filter(pl.col("cutoff") == CALIBRATION_CUTOFF))
    return fit_ltv_model(
        _X(train),
        train["future_spend"].to_numpy(),
        _X(valid),
        valid["future_spend"].to_numpy(),
        purchase.expected_spend(valid, HORIZON),
        purchase,
        HORIZON,
    )


def _coverage(fit: LTVFit, frame: pl.DataFrame) -> tuple[float, np.ndarray, np.ndarray]:
    model = fit.model
    _point, low, high = model.predict(
        _X(frame), model.purchase_model.expected_spend(frame, HORIZON)
    )
    actual = frame["future_spend"].to_numpy()
    return float(np.mean((actual >= low) & (actual <= high))), low, high


def test_the_calibrated_interval_holds_80_percent_of_held_out_customers(
    fitted: LTVFit, halves: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    _valid, held_out = halves
    assert held_out.height > 1000
    coverage, low, high = _coverage(fitted, held_out)
    # ~1,650 held-out customers: one binomial standard error is about 0.01.
    assert 0.76 <= coverage <= 0.84
    assert fitted.validation_by_interval[fitted.model.interval_base]["coverage"] >= COVERAGE
    # Without the offsets the same base says something else: the calibration did the work.
    raw = dataclasses.replace(
        fitted, model=dataclasses.replace(fitted.model, interval_offsets=(0, 0))
    )
    raw_coverage, _, _ = _coverage(raw, held_out)
    assert abs(raw_coverage - coverage) > 0.05
    assert np.all(low <= high)


def test_the_chosen_candidate_has_the_best_validation_score(fitted: LTVFit) -> None:
    scores = {name: m["score"] for name, m in fitted.validation_by_objective.items()}
    assert set(scores) == {"log1p_squared_error", "tweedie"}
    assert fitted.model.objective == max(scores, key=scores.__getitem__)
    assert fitted.model.link == "log"
    widths = {b: v["median_width"] for b, v in fitted.validation_by_interval.items()}
    assert fitted.model.interval_base == min(widths, key=widths.__getitem__)


def test_the_point_is_a_mean_not_a_geometric_mean(
    fitted: LTVFit, halves: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    """The Poisson stack's first-order condition: on the rows it was fitted on, the predicted
    total equals the actual total (floored at 0), which a log1p least-squares fit undershoots."""
    valid, _ = halves
    model = fitted.model
    point = model.point_spend(_X(valid), model.purchase_model.expected_spend(valid, HORIZON))
    actual = valid["future_spend"].clip(lower_bound=0).to_numpy()
    assert point.sum() == pytest.approx(actual.sum(), rel=1e-6)


def test_the_refit_keeps_the_calibration(fitted: LTVFit, examples: pl.DataFrame) -> None:
    rows = examples.filter(pl.col("cutoff").is_in(TRAINING_CUTOFFS[:2]))
    refit = refit_ltv_model(
        fitted.model, _X(rows), rows["future_spend"].to_numpy(), fitted.model.purchase_model
    )
    assert refit.interval_offsets == fitted.model.interval_offsets
    assert (refit.link, refit.interval_base) == (fitted.model.link, fitted.model.interval_base)
    assert refit.stack == fitted.model.stack


def test_poisson_stack_recovers_a_known_mean() -> None:
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=20_000), rng.normal(size=20_000)
    y = rng.poisson(np.exp(0.7 * u + 0.4 * v + 1.0)).astype(float)
    w_u, w_v, c = poisson_stack(u, v, y)
    assert (w_u, w_v, c) == pytest.approx((0.7, 0.4, 1.0), abs=0.03)


def test_conformal_offsets_use_the_finite_sample_rank() -> None:
    # Base [0, 0]; targets 1..99: each side may miss 10%, rank ceil(100 * 0.9) = 90.
    y = np.arange(1, 100, dtype=float)
    low, high = conformal_offsets(np.zeros(99), np.zeros(99), y, 0.8)
    assert high == 90.0  # 90th smallest of y − 0
    assert low == 10.0  # −(90th smallest of 0 − y) = 10
    inside = (y >= low) & (y <= high)
    assert inside.mean() >= 0.8


def test_conformal_offsets_narrow_a_base_that_is_too_wide() -> None:
    y = np.random.default_rng(1).normal(size=5000)
    low, high = conformal_offsets(np.full(5000, -10.0), np.full(5000, 10.0), y, 0.8)
    assert low > 8 and high < -8  # the base shrinks towards ±1.28
    assert np.mean((y >= -10 + low) & (y <= 10 + high)) == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize(
    ("low", "high", "y", "coverage", "message"),
    [
        ([0.0], [1.0, 2.0], [1.0], 0.8, "equal, non-empty"),
        ([], [], [], 0.8, "equal, non-empty"),
        ([0.0], [1.0], [1.0], 1.0, "coverage must be in"),
        ([0.0], [1.0], [float("nan")], 0.8, "finite"),
    ],
)
def test_conformal_offsets_refuse_bad_input(
    low: list[float], high: list[float], y: list[float], coverage: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        conformal_offsets(low, high, y, coverage)


def test_validation_score_rewards_gains_over_the_baseline() -> None:
    spend = np.array([0.0, 0.0, 10.0, 50.0, 200.0, 0.0, 5.0, 80.0, 0.0, 400.0])
    baseline = np.full(spend.size, spend.mean())
    assert validation_score(spend, spend, baseline)["score"] > 0
    assert validation_score(spend, baseline, baseline)["score"] == pytest.approx(0.0)


def test_the_seasonal_cutoff_is_a_year_back_on_the_grid_or_none() -> None:
    grid = tuple(date(2011, 6, 12) - timedelta(days=30 * k) for k in range(6, 16))
    assert seasonal_cutoff(date(2011, 6, 12), grid, 15) == date(2010, 6, 17)  # 360 days back
    # One year of history: no cutoff near a year back, so no level.
    assert seasonal_cutoff(date(2011, 9, 10), TRAINING_CUTOFFS, 15) is None
    assert seasonal_cutoff(date(2011, 9, 10), (), 15) is None


def test_the_seasonal_level_scales_the_point_and_shifts_the_interval(
    fitted: LTVFit, examples: pl.DataFrame
) -> None:
    at_season = examples.filter(pl.col("cutoff") == TRAINING_CUTOFFS[-1])
    leveled, level = with_seasonal_level(fitted.model, at_season, _X(at_season))
    assert leveled.level == level != 1.0
    expected = fit_purchase_model(at_season).expected_spend(at_season, HORIZON)
    # At the cutoff it was measured on, the leveled model's total is the actual total.
    total = leveled.point_spend(_X(at_season), expected).sum()
    assert total == pytest.approx(at_season["future_spend"].clip(lower_bound=0).sum())
    base = fitted.model.point_spend(_X(at_season), expected)
    np.testing.assert_allclose(leveled.point_spend(_X(at_season), expected), level * base)
    quantiles = dataclasses.replace(leveled, interval_base="quantiles")
    low, _ = quantiles.interval_base_log1p(_X(at_season), base)
    raw, _ = dataclasses.replace(quantiles, level=1.0).interval_base_log1p(_X(at_season), base)
    np.testing.assert_allclose(low - raw, np.log(level))
    # No seasonal cutoff: level 1, the model unchanged.
    assert with_seasonal_level(fitted.model, None, None)[0].level == 1.0
