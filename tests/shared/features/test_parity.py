"""One definition, same numbers: one customer alone == all customers at once (online vs offline),
many cutoffs == one call per cutoff, input order irrelevant, per-tenant clocks."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_shared.features import (
    FEATURE_NAMES,
    compute,
    compute_features,
    compute_features_at_cutoffs,
)

from .conftest import load_orders


def sample_customers(orders: pl.DataFrame, as_of: datetime, n_random: int = 30) -> list[str]:
    """The 15 customers with the most orders (long histories stress the sums) and a seeded sample."""
    counts = (
        orders.filter(pl.col("occurred_at") <= as_of)
        .group_by("customer_id")
        .len()
        .sort(["len", "customer_id"], descending=[True, False])
    )
    top = counts.head(15).get_column("customer_id").to_list()
    rest = counts.slice(15).get_column("customer_id").sample(n_random, seed=7).to_list()
    return top + rest


@pytest.mark.parametrize("data", ["orders_i", "orders_ii"])
def test_one_customer_alone_equals_all_customers(data: str, request: pytest.FixtureRequest) -> None:
    orders: pl.DataFrame = request.getfixturevalue(data)
    as_of = orders.get_column("occurred_at").max()  # the tenant clock: its latest event
    everyone = compute_features(orders, as_of)
    for customer in sample_customers(orders, as_of):
        alone = compute_features(orders.filter(pl.col("customer_id") == customer), as_of)
        among = everyone.filter(pl.col("customer_id") == customer)
        assert alone.height == 1
        for name in FEATURE_NAMES:
            assert abs(alone[name][0] - among[name][0]) <= 1e-9, (customer, name)
        # In fact bit-identical: exact money sums, sequential float sums per customer.
        assert_frame_equal(alone, among)


def test_input_order_does_not_matter(orders_i: pl.DataFrame) -> None:
    as_of = datetime(2011, 10, 1, tzinfo=UTC)
    shuffled = orders_i.sample(fraction=1.0, shuffle=True, seed=3)
    assert_frame_equal(compute_features(orders_i, as_of), compute_features(shuffled, as_of))


def test_cutoffs_equal_one_call_per_cutoff(orders_ii: pl.DataFrame) -> None:
    cutoffs = [datetime(2010, m, 1, tzinfo=UTC) for m in range(1, 13)]
    at_cutoffs = compute_features_at_cutoffs(orders_ii, cutoffs)
    one_by_one = pl.concat(
        [compute_features(orders_ii, c).rename({"as_of": "cutoff"}) for c in cutoffs]
    ).sort("tenant_id", "customer_id", "cutoff")
    assert at_cutoffs.height > 3_000  # about 300 customers at each of 12 cutoffs
    assert_frame_equal(at_cutoffs, one_by_one)


def test_outcomes_after_each_cutoff_are_the_orders_and_spend_in_that_window(
    orders_ii: pl.DataFrame,
) -> None:
    cutoffs = [datetime(2010, m, 1, tzinfo=UTC) for m in (3, 7, 11)]
    result = compute_features_at_cutoffs(orders_ii, cutoffs, outcome_days=(90,))
    assert_frame_equal(
        result.select(compute_features_at_cutoffs(orders_ii, cutoffs).columns),
        compute_features_at_cutoffs(orders_ii, cutoffs),
    )
    windows = (
        result.select("customer_id", "cutoff")
        .join(orders_ii, on="customer_id")
        .filter(
            (pl.col("occurred_at") > pl.col("cutoff"))
            & (pl.col("occurred_at") <= pl.col("cutoff") + pl.duration(days=90))
        )
        .group_by("customer_id", "cutoff")
        .agg(
            orders=(pl.col("kind") == "purchase").sum().cast(pl.Float64),
            spend=pl.col("total").sum(),
        )
    )
    expected = result.join(windows, on=["customer_id", "cutoff"], how="left").fill_null(0)
    assert (expected["orders_next_90d"] > 0).sum() > 100
    assert expected["orders_next_90d"].to_list() == expected["orders"].to_list()
    assert expected["spend_next_90d"].to_numpy() == pytest.approx(
        expected["spend"].to_numpy(), abs=1e-6
    )
    with pytest.raises(ValueError, match="positive"):
        compute_features_at_cutoffs(orders_ii, cutoffs, outcome_days=(0,))


def test_categorical_products_give_the_same_features(orders_ii: pl.DataFrame) -> None:
    # The trainer's lake stores products as categoricals; the feature code reads their codes.
    cutoffs = [datetime(2010, m, 1, tzinfo=UTC) for m in (3, 7, 11)]
    categorical = orders_ii.cast({"products": pl.List(pl.Categorical)})
    assert_frame_equal(
        compute_features_at_cutoffs(categorical, cutoffs),
        compute_features_at_cutoffs(orders_ii, cutoffs),
    )


def test_the_grouped_look_up_gives_what_the_keyed_one_gives(
    orders_ii: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The keyed as-of join (customer × span + time) falls back to a grouped one when its key
    # could overflow; both must find the same rows.
    cutoffs = [datetime(2010, m, 1, tzinfo=UTC) for m in range(1, 13)]
    keyed = compute_features_at_cutoffs(orders_ii, cutoffs, outcome_days=(90, 180))
    monkeypatch.setattr(compute, "_KEY_LIMIT", 0)
    assert_frame_equal(
        compute_features_at_cutoffs(orders_ii, cutoffs, outcome_days=(90, 180)), keyed
    )


def test_cutoffs_frame_per_tenant(orders_i: pl.DataFrame) -> None:
    other = orders_i.with_columns(tenant_id=pl.lit("other"))
    both = pl.concat([orders_i, other])
    cutoffs = pl.DataFrame(
        {
            "tenant_id": ["uci", "uci", "other"],
            "cutoff": [datetime(2011, m, 1, tzinfo=UTC) for m in (4, 8, 6)],
        }
    )
    result = compute_features_at_cutoffs(both, cutoffs)
    seen = result.select("tenant_id", "cutoff").unique().sort("tenant_id", "cutoff")
    assert seen.rows() == [
        ("other", cutoffs["cutoff"][2]),
        *(("uci", c) for c in cutoffs["cutoff"][:2]),
    ]


def test_each_tenant_has_its_own_clock() -> None:
    # Two tenants from the two real slices; the same customer id may exist in both.
    first = load_orders("online_retail_slice.parquet", tenant="acme")
    second = load_orders("online_retail_II_slice.parquet", tenant="globex")
    both = pl.concat([first, second])
    clocks = pl.DataFrame(
        {
            "tenant_id": ["acme", "globex"],
            "as_of": [first["occurred_at"].max(), second["occurred_at"].max()],
        }
    )
    result = compute_features(both, clocks)
    for tenant, orders, as_of in zip(
        clocks["tenant_id"], (first, second), clocks["as_of"], strict=True
    ):
        alone = compute_features(orders, as_of)
        assert_frame_equal(result.filter(pl.col("tenant_id") == tenant), alone)
    shared_ids = set(first["customer_id"]) & set(second["customer_id"])
    assert shared_ids  # tenants keep same-id customers apart
    # A tenant without a clock gets no rows.
    only_acme = compute_features(both, clocks.filter(pl.col("tenant_id") == "acme"))
    assert set(only_acme["tenant_id"]) == {"acme"}


def test_each_customer_can_have_its_own_clock(orders_ii: pl.DataFrame) -> None:
    """The features service pins each customer to the clock at their latest event."""
    customers = sample_customers(orders_ii, datetime(2011, 12, 31, tzinfo=UTC), n_random=10)
    moments = [datetime(2010, 6, 1, tzinfo=UTC), datetime(2011, 3, 15, 12, tzinfo=UTC)]
    clocks = pl.DataFrame(
        {
            "tenant_id": [orders_ii["tenant_id"][0]] * len(customers),
            "customer_id": customers,
            "as_of": [moments[i % 2] for i in range(len(customers))],
        },
        schema_overrides={"as_of": pl.Datetime("us", "UTC")},
    )
    together = compute_features(orders_ii, clocks)
    separately = pl.concat(
        [
            compute_features(orders_ii.filter(pl.col("customer_id") == c), moments[i % 2])
            for i, c in enumerate(customers)
        ]
    ).sort("tenant_id", "customer_id")
    assert together.height == separately.height > 0
    assert_frame_equal(together, separately)
    with pytest.raises(ValueError, match="tenant_id and customer_id one clock"):
        compute_features(orders_ii, pl.concat([clocks, clocks]))
