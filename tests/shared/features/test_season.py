"""The seasonality features: the clock's time of year (`season_sin`, `season_cos`), the
customer's share of spend in October-December (`q4_spend_share`) and their orders in the coming
season one year earlier (`orders_season_last_year`), point in time, and the same in the batch
definition and the features service's running totals."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from retention_shared.features import FEATURE_NAMES, compute_features, compute_features_at_cutoffs
from retention_shared.features.running import RunningCustomer, running_orders

from .test_definition import frame

US = timedelta(microseconds=1)
# One customer: Christmas-season buying in 2010, spring buying in 2011, a cancellation in
# November (gross, not net: it must not move the share), and orders on the Q4 boundaries.
ORDERS = frame(
    [
        ("c", "o1", datetime(2010, 11, 20, 10, tzinfo=UTC), "purchase", 30.0, ["a"]),
        ("c", "x1", datetime(2010, 11, 25, 10, tzinfo=UTC), "cancellation", -5.0, ["a"]),
        ("c", "o2", datetime(2011, 2, 1, 10, tzinfo=UTC), "purchase", 10.0, ["b"]),
        ("c", "o3", datetime(2011, 10, 1, tzinfo=UTC) - US, "purchase", 20.0, ["b"]),
        ("c", "o4", datetime(2011, 10, 1, tzinfo=UTC), "purchase", 40.0, ["c"]),
        ("c", "o5", datetime(2012, 1, 1, tzinfo=UTC), "purchase", 100.0, ["c"]),
        ("d", "o6", datetime(2011, 3, 3, tzinfo=UTC), "purchase", 7.0, ["a"]),
    ]
)


def at(clock: datetime) -> dict[str, dict[str, float]]:
    rows = compute_features(ORDERS, clock).iter_rows(named=True)
    return {row["customer_id"]: row for row in rows}


def test_q4_share_counts_gross_purchases_in_october_to_december_up_to_the_clock() -> None:
    assert at(datetime(2010, 12, 31, tzinfo=UTC))["c"]["q4_spend_share"] == 1.0
    assert at(datetime(2011, 3, 1, tzinfo=UTC))["c"]["q4_spend_share"] == pytest.approx(30 / 40)
    # 23:59:59.999999 on 30 September is Q3; midnight on 1 October is Q4.
    assert at(datetime(2011, 9, 30, 23, tzinfo=UTC) + timedelta(minutes=59, seconds=59.999999))[
        "c"
    ]["q4_spend_share"] == pytest.approx(30 / 60)
    assert at(datetime(2011, 10, 1, tzinfo=UTC))["c"]["q4_spend_share"] == pytest.approx(70 / 100)
    assert at(datetime(2012, 1, 1, tzinfo=UTC))["c"]["q4_spend_share"] == pytest.approx(70 / 200)
    assert at(datetime(2011, 6, 1, tzinfo=UTC))["d"]["q4_spend_share"] == 0.0


def test_q4_share_at_a_cutoff_never_sees_a_later_order() -> None:
    cutoffs = [datetime(2011, 3, 1, tzinfo=UTC), datetime(2011, 11, 1, tzinfo=UTC)]
    before = compute_features_at_cutoffs(ORDERS, cutoffs)
    # A huge December order after both cutoffs: nothing at either may move.
    later = frame([("c", "o9", datetime(2011, 12, 24, tzinfo=UTC), "purchase", 1e6, ["z"])])
    after = compute_features_at_cutoffs(pl.concat([ORDERS, later]), cutoffs)
    assert after.equals(before)
    assert before.get_column("q4_spend_share").to_list()[:2] == pytest.approx([0.75, 70 / 100])


@pytest.mark.parametrize("month", range(1, 13))
def test_season_is_the_clocks_month_on_a_circle(month: int) -> None:
    clock = datetime(2011, month, 28, 23, 30, tzinfo=UTC)
    rows = compute_features(ORDERS.filter(pl.col("occurred_at") <= clock), clock)
    angle = 2 * math.pi * (month - 0.5) / 12
    # The same for every customer at one clock.
    assert rows.get_column("season_sin").to_list() == [math.sin(angle)] * rows.height
    assert rows.get_column("season_cos").to_list() == [math.cos(angle)] * rows.height


def test_december_and_january_are_neighbours() -> None:
    december = at(datetime(2011, 12, 31, 23, tzinfo=UTC))["c"]
    january = at(datetime(2012, 1, 1, 1, tzinfo=UTC))["c"]
    june = at(datetime(2011, 6, 15, tzinfo=UTC))["c"]

    def distance(a: dict[str, float], b: dict[str, float]) -> float:
        return math.hypot(a["season_sin"] - b["season_sin"], a["season_cos"] - b["season_cos"])

    assert distance(december, january) == pytest.approx(2 * math.sin(math.pi / 12))
    assert distance(december, june) > 1.9


def test_running_totals_give_the_batch_values_at_every_clock() -> None:
    """The features service's path at clocks in every quarter: the season features and the Q4
    share bit for bit (the others are compared on real data in test_running.py)."""
    customer = RunningCustomer()
    for tenant, key, order in running_orders(ORDERS.sort("occurred_at")):
        if key != "c":
            continue
        customer.add(order)
        added = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=order.occurred_at_us)
        so_far = ORDERS.filter(pl.col("occurred_at") <= added)
        for days in (0, 40, 100, 200):
            clock = added + timedelta(days=days)
            clock_us = order.occurred_at_us + days * 86_400_000_000
            batch = compute_features(so_far, clock)
            row = batch.filter(pl.col("customer_id") == "c").row(0, named=True)
            assert customer.serves(clock_us)
            vector = customer.vector(clock_us).features
            for name in ("q4_spend_share", "season_sin", "season_cos", "orders_season_last_year"):
                assert vector[name] == row[name], (tenant, clock, name)
            assert vector == pytest.approx({name: row[name] for name in FEATURE_NAMES})


def test_last_years_season_is_the_90_days_after_the_clock_a_year_earlier() -> None:
    clock = datetime(2011, 9, 10, 12, tzinfo=UTC)
    start, end = clock - timedelta(days=365), clock - timedelta(days=275)
    rows = [
        ("e", "at-start", start, "purchase", 1.0, ["a"]),  # excluded: the window is (start, end]
        ("e", "after-start", start + US, "purchase", 1.0, ["a"]),
        ("e", "cancelled", start + timedelta(days=9), "cancellation", -1.0, ["a"]),
        ("e", "at-end", end, "purchase", 1.0, ["a"]),
        ("e", "after-end", end + US, "purchase", 1.0, ["a"]),
        ("e", "recent", clock - timedelta(days=3), "purchase", 1.0, ["a"]),
    ]
    features = compute_features(frame(rows), clock).row(0, named=True)
    assert features["orders_season_last_year"] == 2.0
    # A day later the window moves: the order just after its start falls out, the one just
    # after its end comes in.
    later = compute_features(frame(rows), clock + timedelta(days=1)).row(0, named=True)
    assert later["orders_season_last_year"] == 2.0
    assert (
        compute_features(frame(rows), clock + timedelta(days=100)).row(0, named=True)[
            "orders_season_last_year"
        ]
        == 0.0
    )


def test_last_years_season_at_a_cutoff_never_sees_a_later_order() -> None:
    cutoffs = [datetime(2011, 3, 1, tzinfo=UTC), datetime(2012, 1, 2, tzinfo=UTC)]
    before = compute_features_at_cutoffs(ORDERS, cutoffs)
    later = frame([("c", "o9", datetime(2012, 1, 3, tzinfo=UTC), "purchase", 5.0, ["z"])])
    after = compute_features_at_cutoffs(pl.concat([ORDERS, later]), cutoffs)
    assert after.equals(before)
    # 2012-01-02: (2011-01-02, 2011-04-02] holds the order of 2011-02-01.
    assert before.filter(pl.col("customer_id") == "c").get_column(
        "orders_season_last_year"
    ).to_list() == [0.0, 1.0]
