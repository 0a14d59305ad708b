"""Every feature against an independent plain-Python computation, on real customers; the
documented values of the edge cases; the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from retention_shared.features import (
    CLOCK_FEATURES,
    FEATURE_NAMES,
    FEATURES,
    compute_features,
    feature_table_markdown,
)

from .reference import reference_features

CASES = [
    ("orders_i", datetime(2011, 3, 15, 12, 34, 56, tzinfo=UTC)),
    ("orders_i", datetime(2011, 12, 9, 23, 0, tzinfo=UTC)),
    ("orders_ii", datetime(2010, 3, 20, 9, 0, tzinfo=UTC)),
    ("orders_ii", datetime(2010, 11, 1, tzinfo=UTC)),
]


def by_customer(orders: pl.DataFrame) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in orders.iter_rows(named=True):
        grouped.setdefault(row["customer_id"], []).append(row)
    return grouped


@pytest.mark.parametrize(("data", "as_of"), CASES)
def test_every_customer_matches_plain_python(
    data: str, as_of: datetime, request: pytest.FixtureRequest
) -> None:
    orders: pl.DataFrame = request.getfixturevalue(data)
    features = compute_features(orders, as_of)
    history = by_customer(orders)
    expected_customers = {
        c for c, rows in history.items() if min(r["occurred_at"] for r in rows) <= as_of
    }
    assert set(features.get_column("customer_id")) == expected_customers

    kinds = {"one-time": 0, "repeat": 0, "no purchase": 0, "cancels": 0}
    for row in features.iter_rows(named=True):
        expected = reference_features(history[row["customer_id"]], as_of)
        assert row["as_of"] == as_of
        for name in FEATURE_NAMES:
            assert row[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-9), (
                row["customer_id"],
                name,
            )
        kinds["one-time"] += expected["frequency"] == 1
        kinds["repeat"] += expected["gap_mean_days"] > 0
        kinds["no purchase"] += expected["frequency"] == 0
        kinds["cancels"] += 0 < expected["cancellation_rate"] < 1
    # The real slices exercise each kind of customer, so the comparison covers the edge cases.
    assert all(kinds.values()), kinds


def test_windows_and_trend_on_a_real_customer(orders_ii: pl.DataFrame) -> None:
    # The customer with the most purchase orders in the slice, at the time of their 10th order.
    top = (
        orders_ii.filter(pl.col("kind") == "purchase")
        .group_by("customer_id")
        .len()
        .sort(["len", "customer_id"], descending=[True, False])
        .get_column("customer_id")[0]
    )
    mine = orders_ii.filter(pl.col("customer_id") == top).sort("occurred_at")
    as_of = mine.filter(pl.col("kind") == "purchase").get_column("occurred_at")[9]
    row = compute_features(orders_ii, as_of).filter(pl.col("customer_id") == top).row(0, named=True)
    # An order exactly at as_of is included: the last purchase is now.
    assert row["recency_days"] == 0.0
    assert row["frequency"] == 10
    assert row["orders_365d"] >= row["orders_180d"] >= row["orders_90d"] >= row["orders_30d"] >= 1
    assert -1.0 <= row["spend_trend"] <= 1.0
    assert row["recency_gap_ratio"] == 0.0
    assert row["days_past_expected_order"] == -row["gap_mean_days"]


def frame(rows: list[tuple[str, str, datetime, str, float, list[str]]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            ("t", customer, order, at, kind, total, float(len(products)), products)
            for customer, order, at, kind, total, products in rows
        ],
        schema={
            "tenant_id": pl.String,
            "customer_id": pl.String,
            "order_id": pl.String,
            "occurred_at": pl.Datetime("us", "UTC"),
            "kind": pl.String,
            "total": pl.Float64,
            "items": pl.Float64,
            "products": pl.List(pl.String),
        },
        orient="row",
    )


T0 = datetime(2024, 1, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def test_edge_cases_have_their_documented_values() -> None:
    orders = frame(
        [
            ("one-time", "o1", T0, "purchase", 50.0, ["a", "b"]),
            ("cancels-only", "c1", T0 + 2 * DAY, "cancellation", -20.0, ["a"]),
            ("cancels-only", "c2", T0 + 5 * DAY, "cancellation", -5.0, ["b"]),
            ("at-clock", "x1", T0, "purchase", 10.0, ["a"]),
            ("at-clock", "x2", T0 + 10 * DAY, "purchase", 30.0, ["a", "c"]),
            ("over-cancelled", "y1", T0, "purchase", 10.0, ["a"]),
            ("over-cancelled", "y2", T0 + DAY, "cancellation", -25.0, ["z"]),
            ("future", "f1", T0 + 11 * DAY, "purchase", 99.0, ["a"]),
        ]
    )
    as_of = T0 + 10 * DAY
    rows = {r["customer_id"]: r for r in compute_features(orders, as_of).iter_rows(named=True)}
    assert set(rows) == {"one-time", "cancels-only", "at-clock", "over-cancelled"}

    one = rows["one-time"]
    assert one["recency_days"] == one["tenure_days"] == 10.0
    assert one["gap_mean_days"] == one["gap_std_days"] == 0.0
    assert one["days_past_expected_order"] == 10.0
    assert one["recency_gap_ratio"] == 10.0  # divisor floored at one day
    assert one["avg_order_value"] == 50.0 and one["unique_products"] == 2.0
    assert one["spend_trend"] == 1.0  # all gross value in the recent 90 days

    gone = rows["cancels-only"]
    assert gone["frequency"] == 0.0 and gone["monetary"] == -25.0
    assert gone["recency_days"] == 5.0 and gone["tenure_days"] == 8.0  # from its events
    assert gone["avg_order_value"] == gone["avg_items_per_order"] == 0.0
    assert gone["cancellation_rate"] == 1.0
    assert gone["unique_products"] == gone["active_months"] == 0.0
    assert gone["spend_trend"] == 0.0 and gone["spend_30d"] == -25.0

    now = rows["at-clock"]
    assert now["recency_days"] == 0.0 and now["orders_30d"] == 2.0 and now["spend_30d"] == 40.0
    assert now["gap_mean_days"] == 10.0 and now["gap_std_days"] == 0.0
    assert now["days_past_expected_order"] == -10.0 and now["recency_gap_ratio"] == 0.0

    assert rows["over-cancelled"]["cancellation_rate"] == 1.0  # 25 / 10, capped

    for row in rows.values():
        for name in FEATURE_NAMES:
            assert row[name] is not None and row[name] == row[name], (row["customer_id"], name)


def test_orders_at_one_instant_are_one_purchase_occasion() -> None:
    orders = frame(
        [
            ("c", "a1", T0, "purchase", 10.0, ["a"]),
            ("c", "a2", T0, "purchase", 5.0, ["b"]),  # a split invoice, same minute
            ("c", "b", T0 + 4 * DAY, "purchase", 1.0, ["a"]),
            ("c", "c", T0 + 10 * DAY, "purchase", 1.0, ["c"]),
        ]
    )
    row = compute_features(orders, T0 + 12 * DAY).row(0, named=True)
    assert row["frequency"] == 4.0  # orders
    assert row["gap_mean_days"] == 5.0  # gaps 4 and 6 between three occasions, not 0, 4, 6
    assert row["gap_std_days"] == 1.0
    assert row["unique_products"] == 3.0 and row["active_months"] == 1.0


def test_windows_are_half_open_at_the_start_and_trend_spans_both_halves() -> None:
    orders = frame(
        [
            ("c", "edge", T0 - 30 * DAY, "purchase", 1.0, ["a"]),  # exactly 30 days: outside 30d
            ("c", "in", T0 - 30 * DAY + timedelta(microseconds=1), "purchase", 2.0, ["a"]),
            ("c", "old", T0 - 100 * DAY, "purchase", 6.0, ["a"]),  # in the earlier 90 days
        ]
    )
    row = compute_features(orders, T0).row(0, named=True)
    assert row["orders_30d"] == 1.0 and row["spend_30d"] == 2.0
    assert row["orders_90d"] == 2.0 and row["orders_180d"] == 3.0
    assert row["spend_trend"] == pytest.approx((3.0 - 6.0) / 9.0, rel=1e-15)


def test_no_nulls_or_nans_on_real_data(orders_i: pl.DataFrame) -> None:
    features = compute_features(orders_i, datetime(2011, 6, 1, tzinfo=UTC))
    values = features.select(FEATURE_NAMES)
    assert values.null_count().sum_horizontal().item() == 0
    assert not values.select(pl.all().is_nan().any()).sum_horizontal().item()
    assert not values.select(pl.all().is_infinite().any()).sum_horizontal().item()
    assert features.get_column("spend_trend").is_between(-1, 1).all()
    assert features.get_column("cancellation_rate").is_between(0, 1).all()


def test_registry_is_the_output_schema() -> None:
    features = compute_features(frame([("c", "o", T0, "purchase", 1.0, ["a"])]), T0)
    assert features.columns == ["tenant_id", "customer_id", "as_of", *FEATURE_NAMES]
    assert all(features.schema[n] == pl.Float64 for n in FEATURE_NAMES)
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert all(f.meaning and f.unit for f in FEATURES)
    assert set(CLOCK_FEATURES) == {
        "recency_days",
        "tenure_days",
        "spend_trend",
        "days_past_expected_order",
        "recency_gap_ratio",
        "season_sin",
        "season_cos",
        "orders_season_last_year",
        *(f"{k}_{n}d" for k in ("orders", "spend") for n in (30, 90, 180, 365)),
    }
    table = feature_table_markdown()
    assert all(f"`{n}`" in table for n in FEATURE_NAMES)


def test_bad_input_is_named() -> None:
    good = frame([("c", "o", T0, "purchase", 1.0, ["a"])])
    with pytest.raises(ValueError, match="items"):
        compute_features(good.drop("items"), T0)
    with pytest.raises(ValueError, match="kind"):
        compute_features(good.with_columns(kind=pl.lit("refund")), T0)
    with pytest.raises(ValueError, match="time-zone"):
        compute_features(good.with_columns(pl.col("occurred_at").dt.replace_time_zone(None)), T0)
    with pytest.raises(ValueError, match="total has 1 NULL"):
        compute_features(good.with_columns(total=pl.lit(None, pl.Float64)), T0)
    with pytest.raises(ValueError, match="aware"):
        compute_features(good, datetime(2024, 1, 1))
