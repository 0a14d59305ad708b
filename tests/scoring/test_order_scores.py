"""Expected orders and the next-order date as scoring serves them: in the score (and so the
lists) and in `CustomerScore` events, from a stored bundle on real customers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from retention_bundle.bundle import read_bundle
from retention_bundle.predict import score
from retention_scoring.lists import LIST_COLUMNS
from retention_scoring.scoring import SCORE_COLUMNS, score_customers
from retention_shared.events import CustomerScore, decode_event
from retention_shared.features import compute_features
from tests.support.uci_orders import TEST_DATA, load_orders

CLOCK = datetime(2011, 9, 11, tzinfo=UTC)


@pytest.fixture(scope="module")
def features() -> pl.DataFrame:
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    return compute_features(orders, CLOCK).filter(pl.col("frequency") >= 1)


def test_the_next_order_date_is_the_clock_plus_the_model_s_days(features: pl.DataFrame) -> None:
    bundle = read_bundle(TEST_DATA / "bundles" / "with-rolling")
    scored = score_customers(bundle, features)
    assert {"expected_orders", "next_order_by"} <= set(SCORE_COLUMNS) <= set(scored.columns)
    assert {"expected_orders", "next_order_by"} <= set(LIST_COLUMNS)
    raw = score(bundle, features)
    np.testing.assert_allclose(scored["expected_orders"], raw["expected_orders"])
    days = raw["next_order_days"].to_list()
    dates = scored["next_order_by"].to_list()
    assert any(d is None for d in days) and any(d is not None for d in days)
    for d, on in zip(days, dates, strict=True):
        assert (on is None) == (d is None)
        if d is not None:
            assert on == (CLOCK + timedelta(days=d)).date()
    # A customer who ordered yesterday, every few weeks, is expected back within the horizon.
    regular = scored.filter(pl.col("next_order_by").is_not_null())
    assert regular["next_order_by"].min() >= CLOCK.date()


def test_a_raw_feature_vector_has_expected_orders_but_no_date(features: pl.DataFrame) -> None:
    bundle = read_bundle(TEST_DATA / "bundles" / "with-rolling")
    vectors = features.select("customer_id", *bundle.feature_names)
    scored = score_customers(bundle, vectors)
    assert scored["next_order_by"].null_count() == scored.height
    assert (scored["expected_orders"] >= 0).all()


def test_customer_score_events_carry_them_and_older_events_still_read() -> None:
    event = CustomerScore(
        tenant_id="t",
        customer_id="c",
        churn_probability=0.2,
        risk_band="low",
        predicted_ltv=10.0,
        ltv_low=5.0,
        ltv_high=20.0,
        value_tier="Low",
        segment="s",
        action="a",
        model_version="v",
        features_as_of=CLOCK,
        expected_orders=1.7,
        next_order_by=(CLOCK + timedelta(days=12)).date(),
    )
    payload = event.model_dump_json().encode()
    again = decode_event(CustomerScore, payload)
    assert again.expected_orders == 1.7 and again.next_order_by.isoformat() == "2011-09-23"
    older = event.model_dump(mode="json", exclude={"expected_orders", "next_order_by"})
    read = decode_event(CustomerScore, json.dumps(older).encode())
    assert read.expected_orders is None and read.next_order_by is None
