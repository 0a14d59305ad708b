"""The running totals (`RunningCustomer`, the features service's hot path) equal the vectorized
definition on real data: streamed in log order against the tenant clock, in any arrival order,
and with the compact history and summary the scorer receives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_shared.features import (
    FEATURE_NAMES,
    compact_history,
    compute_features,
    compute_features_at_cutoffs,
    history_summaries,
    recompute_clock_features,
)
from retention_shared.features.running import RunningCustomer, RunningOrder
from retention_shared.features.running import running_orders as shared_running_orders
from tests.support.uci_orders import REPO_DATA
from tests.support.uci_orders import load_orders as load_uci_orders

from .conftest import load_orders

KEY = ("tenant_id", "customer_id")
Key = tuple[str, str]


def running_orders(orders: pl.DataFrame) -> list[tuple[Key, RunningOrder]]:
    """The orders in file order, as the features service hands them to the running totals."""
    return [((t, c), order) for t, c, order in shared_running_orders(orders)]


def stream(stream_orders: list[tuple[Key, RunningOrder]]) -> tuple[dict, dict[Key, int]]:
    """Customers' totals after every order, and each one's tenant clock at their last order (the
    service's `as_of`); a vector is taken after every order, so pruning is exercised too."""
    customers: dict[Key, RunningCustomer] = {}
    clocks: dict[str, int] = {}
    as_of: dict[Key, int] = {}
    for key, order in stream_orders:
        clocks[key[0]] = max(clocks.get(key[0], order.occurred_at_us), order.occurred_at_us)
        customer = customers.setdefault(key, RunningCustomer())
        customer.add(order)
        as_of[key] = clocks[key[0]]
        customer.vector(as_of[key])
    return customers, as_of


def clock_frame(as_of: dict[Key, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [(t, c, at) for (t, c), at in as_of.items()],
        schema={"tenant_id": pl.String, "customer_id": pl.String, "as_of": pl.Int64},
        orient="row",
    ).with_columns(pl.col("as_of").cast(pl.Datetime("us", "UTC")))


def assert_same_as_offline(
    orders: pl.DataFrame, customers: dict[Key, RunningCustomer], as_of: dict[Key, int]
) -> None:
    clocks = clock_frame(as_of)
    offline = compute_features(orders, clocks)
    assert offline.height == len(customers)
    for row in offline.iter_rows(named=True):
        key = (row["tenant_id"], row["customer_id"])
        vector = customers[key].vector(as_of[key])
        # In fact bit-identical (same integer sums, same float operations in the same order).
        assert vector.features == {name: row[name] for name in FEATURE_NAMES}, key


@pytest.mark.parametrize("name", ["online_retail_slice.parquet", "online_retail_II_slice.parquet"])
def test_streamed_in_log_order_equals_the_offline_definition(name: str) -> None:
    orders = load_orders(name)
    customers, as_of = stream(running_orders(orders))
    assert_same_as_offline(orders, customers, as_of)


@pytest.mark.slow
def test_the_whole_online_retail_file_equals_the_offline_definition() -> None:
    orders = load_uci_orders(REPO_DATA / "online_retail.parquet")
    customers, as_of = stream(running_orders(orders))
    assert len(customers) > 4000
    assert_same_as_offline(orders, customers, as_of)


def test_any_arrival_order_gives_the_same_vectors(orders_ii: pl.DataFrame) -> None:
    """Late orders (before a customer's latest) land between known ones: gaps, months, first
    purchase and window sums come out as if they had arrived in order."""
    shuffled = running_orders(orders_ii)
    random.Random(11).shuffle(shuffled)
    customers: dict[Key, RunningCustomer] = {}
    late = 0
    for key, order in shuffled:
        customer = customers.setdefault(key, RunningCustomer())
        late += customer.last_key is not None and order[:3] < customer.last_key
        assert customer.can_add(order)  # whole item counts: any order is exact
        customer.add(order)
    assert late > 1000
    end = orders_ii.get_column("occurred_at").max()
    end_us = int(orders_ii.select(pl.col("occurred_at").dt.epoch("us").max()).item())
    offline = compute_features(orders_ii, end)
    for row in offline.iter_rows(named=True):
        vector = customers[(row["tenant_id"], row["customer_id"])].vector(end_us)
        assert vector.features == {name: row[name] for name in FEATURE_NAMES}


def test_compact_history_and_summary_equal_the_scorers_inputs(orders_ii: pl.DataFrame) -> None:
    customers, as_of = stream(running_orders(orders_ii))
    clocks = clock_frame(as_of)
    summaries = history_summaries(orders_ii, clocks)
    kept = compact_history(orders_ii, clocks).with_columns(pl.col("occurred_at").dt.epoch("us"))
    expected = {
        key: [tuple(r) for r in group.select("occurred_at", "kind", "total").iter_rows()]
        for key, group in kept.group_by(*KEY, maintain_order=True)
    }
    for key, customer in customers.items():
        vector = customer.vector(as_of[key])
        assert vector.history == expected[key], key
        summary = summaries[key]
        assert vector.purchase_orders == summary.purchase_orders
        assert vector.cancellations == summary.cancellations
        assert vector.last_event_us == micros(summary.last_event_at)
        assert vector.first_purchase_us == micros(summary.first_purchase_at)
        assert vector.last_purchase_us == micros(summary.last_purchase_at)


def micros(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // (moment.resolution)


def test_what_the_totals_cannot_serve_is_refused(orders_ii: pl.DataFrame) -> None:
    order = next(o for _, o in running_orders(orders_ii) if o.kind == "purchase")
    day, year = 86_400_000_000, 366 * 86_400_000_000
    t = order.occurred_at_us
    customer = RunningCustomer()
    assert not customer.serves(t)  # no orders: no vector
    for n in range(20):
        customer.add(order._replace(occurred_at_us=t + n * day, order_id=f"o{n}"))
    assert not customer.serves(t + day)  # a clock before the latest order
    customer.vector(t + 2 * year)  # drops the middle orders: no later clock needs them …
    assert not customer.serves(t + year)  # … so an earlier clock is refused
    assert customer.serves(t + 3 * year)
    late = order._replace(occurred_at_us=t + day // 2, order_id="late", items=1.5)
    first_and_last = [(t, "purchase", order.total), (t + 19 * day, "purchase", order.total)]
    assert customer.vector(t + 3 * year).history == first_and_last
    assert not customer.can_add(late)  # late, and its items would round differently
    with pytest.raises(ValueError):
        customer.add(late)
    assert customer.can_add(late._replace(occurred_at_us=t + 30 * day))  # in canonical order


def big_spender(orders: pl.DataFrame) -> pl.DataFrame:
    """A customer of the real slice's tenant with 20 purchases of 9.99e11 (the contract allows
    1e12) over two years, a few in Q4, and two cancellations: ~2e25 micro-units, far past int64."""
    start = datetime(2010, 1, 5, tzinfo=UTC)
    rows = [
        (f"big-{n}", start + timedelta(days=37 * n), "purchase", 9.99e11 - n * 1_234.5678)
        for n in range(20)
    ]
    rows += [("big-c1", start + timedelta(days=300), "cancellation", -9.98e11)]
    rows += [("big-c2", start + timedelta(days=700), "cancellation", -3.3e11)]
    tenant = orders.get_column("tenant_id")[0]
    return pl.DataFrame(
        [
            (tenant, "big", order_id, at, kind, total, 3.0, ["P1", f"P{n}"])
            for n, (order_id, at, kind, total) in enumerate(rows)
        ],
        schema=orders.schema,
        orient="row",
    )


def test_sums_past_int64_equal_the_streamed_totals(orders_ii: pl.DataFrame) -> None:
    """Money sums past int64 (and past float64's exact integers) stay exact in batch, as the
    streamed Python-int totals are: the customer's spend is positive and equals the stream's."""
    orders = pl.concat([orders_ii, big_spender(orders_ii)])
    customers, as_of = stream(running_orders(orders))
    assert_same_as_offline(orders, customers, as_of)
    big = customers[(orders["tenant_id"][0], "big")].vector(as_of[(orders["tenant_id"][0], "big")])
    exact = sum(round(t * 1_000_000) for t in big_spender(orders_ii)["total"]) / 1_000_000
    assert big.features["monetary"] == exact > 1e13
    assert 0 < big.features["cancellation_rate"] < 1
    # The same at many cutoffs (outcomes too), and a clock moved on from the compact history.
    cutoffs = [datetime(2010, m, 1, tzinfo=UTC) for m in range(2, 13)]
    at_cutoffs = compute_features_at_cutoffs(orders, cutoffs, outcome_days=(90,))
    for cutoff in cutoffs:
        alone = big_spender(orders_ii).filter(pl.col("occurred_at") <= cutoff)
        streamed = RunningCustomer.from_orders(o for _, _, o in shared_running_orders(alone))
        row = at_cutoffs.filter((pl.col("customer_id") == "big") & (pl.col("cutoff") == cutoff))
        assert streamed.vector(micros(cutoff) or 0).features == {
            name: row[name][0] for name in FEATURE_NAMES
        }
        after = big_spender(orders_ii).filter(
            (pl.col("occurred_at") > cutoff)
            & (pl.col("occurred_at") <= cutoff + timedelta(days=90))
        )
        spent = sum(round(t * 1_000_000) for t in after["total"]) * (1 / 1_000_000)
        assert row["spend_next_90d"][0] == spent
    june, end = datetime(2011, 6, 1, tzinfo=UTC), orders.get_column("occurred_at").max()
    before_june = orders.filter(pl.col("occurred_at") <= june)
    moved = recompute_clock_features(
        compute_features(before_june, june), compact_history(before_june, june), end
    )
    assert_frame_equal(moved, compute_features(before_june, end))
    assert moved.filter(pl.col("customer_id") == "big")["spend_365d"][0] > 1e12
