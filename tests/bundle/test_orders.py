"""Expected orders and the next-order date (`retention_bundle.models.orders`) on real customers:
the date is the 50% point of BG/NBD's time to the next order, and there is none when the chance
of an order within a year stays below one half."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from retention_bundle.bundle import read_bundle
from retention_bundle.models.bgnbd import conditional_expected_purchases
from retention_bundle.models.orders import NEXT_ORDER_MAX_DAYS, OrderModel
from retention_bundle.models.purchase import purchase_summary
from retention_bundle.predict import score
from retention_shared.features import compute_features
from retention_trainer.classical.bgnbd import probability_no_purchase
from retention_trainer.fitting.orders import fit_order_bgnbd
from tests.support.uci_orders import TEST_DATA, load_orders

STORED = TEST_DATA / "bundles"


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    frame = compute_features(orders, datetime(2011, 9, 11, tzinfo=UTC))
    return frame.filter(pl.col("frequency") >= 1)


@pytest.fixture(scope="module")
def model(features: pl.DataFrame) -> OrderModel:
    return OrderModel(fit_order_bgnbd(features), horizon_days=90)


def test_expected_orders_are_bgnbd_conditional_expected_purchases(
    model: OrderModel, features: pl.DataFrame
) -> None:
    x, t_x, T, _ = purchase_summary(features)
    forecast = model.forecast(features, np.zeros((features.height, 0)))
    expected = conditional_expected_purchases(model.bgnbd, x, t_x, T, 90)
    np.testing.assert_allclose(forecast.expected_orders, expected)
    assert np.all(forecast.expected_orders >= 0)
    # Customers who ordered more often and more lately are expected to order more.
    assert np.corrcoef(forecast.expected_orders, features["orders_90d"])[0, 1] > 0.3


def test_the_next_order_date_is_where_the_chance_of_an_order_reaches_one_half(
    model: OrderModel, features: pl.DataFrame
) -> None:
    x, t_x, T, _ = purchase_summary(features)
    days = model.next_order_days(features)
    dated = np.isfinite(days)
    assert 0 < dated.sum() < len(days)  # both kinds of customer are in the slice
    chance_at_date = np.array(
        [
            1 - probability_no_purchase(model.bgnbd, x[i], t_x[i], T[i], days[i])
            for i in np.flatnonzero(dated)
        ]
    ).ravel()
    np.testing.assert_allclose(chance_at_date, 0.5, atol=1e-9)
    assert np.all((days[dated] >= 0) & (days[dated] <= NEXT_ORDER_MAX_DAYS))
    # No date: below one half within a year.
    undated = np.flatnonzero(~dated)
    within_year = np.array(
        [
            1 - probability_no_purchase(model.bgnbd, x[i], t_x[i], T[i], NEXT_ORDER_MAX_DAYS)
            for i in undated
        ]
    ).ravel()
    assert np.all(within_year < 0.5 + 1e-9)


def test_a_faster_rate_brings_the_date_forward(model: OrderModel, features: pl.DataFrame) -> None:
    plain = model.next_order_days(features)
    faster = model.next_order_days(features, 2.0)
    both = np.isfinite(plain) & np.isfinite(faster)
    np.testing.assert_allclose(faster[both], plain[both] / 2)


@pytest.mark.parametrize("name", ["before-rolling", "with-rolling"])
def test_a_bundle_from_before_the_order_model_forecasts_with_its_bgnbd_part(
    name: str, features: pl.DataFrame
) -> None:
    bundle = read_bundle(STORED / name)
    assert bundle.orders is None
    derived = bundle.order_model
    assert derived.bgnbd == bundle.ltv.purchase_model.bgnbd
    assert derived.horizon_days == bundle.windows.churn.horizon_days == 90
    scored = score(bundle, features)
    assert (scored["expected_orders"] >= 0).all()
    days = scored["next_order_days"].drop_nulls()
    assert 0 < days.len() < scored.height
    assert ((days >= 0) & (days <= NEXT_ORDER_MAX_DAYS)).all()
