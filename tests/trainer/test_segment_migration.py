"""The segment migration matrix on a handful of hand-made orders (no lake, no model store)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from retention_bundle.models.segmenter import Segmenter
from retention_shared.features import ORDER_SCHEMA, compute_features
from retention_trainer.segment_migration import (
    NOT_YET_A_CUSTOMER,
    Flow,
    InvalidRange,
    date_clock,
    migration_matrix,
    migration_range,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 6, 1, tzinfo=UTC)
# Raw log1p(recency), log1p(frequency), log1p(monetary) centroids (means 0, scales 1).
SEGMENTER = Segmenter(
    means=np.zeros(3),
    scales=np.ones(3),
    centroids=np.array([[1.0, 1.5, 7.0], [4.5, 1.0, 6.0]]),
    names=("Champions", "Lost"),
)


def orders(*rows: tuple[str, str, str, float]) -> pl.DataFrame:
    """(customer, day, kind, total) rows of tenant t."""
    return pl.DataFrame(
        [
            {
                "tenant_id": "t",
                "customer_id": customer,
                "order_id": f"{customer}-{i}",
                "occurred_at": datetime.fromisoformat(day).replace(tzinfo=UTC),
                "kind": kind,
                "total": total,
                "items": 1.0,
                "products": ["p"],
            }
            for i, (customer, day, kind, total) in enumerate(rows)
        ],
        schema=ORDER_SCHEMA,
    )


HISTORY = orders(
    # a: a big buyer before START who stops: Champions then Lost.
    ("a", "2024-01-05", "purchase", 900.0),
    ("a", "2024-02-10", "purchase", 800.0),
    ("a", "2024-02-25", "purchase", 700.0),
    # b: one small order long before START, then big recent ones: Lost then Champions.
    ("b", "2023-06-01", "purchase", 20.0),
    ("b", "2024-05-01", "purchase", 900.0),
    ("b", "2024-05-20", "purchase", 800.0),
    ("b", "2024-05-25", "cancellation", -100.0),
    # c: first order after START: not yet a customer, then Champions.
    ("c", "2024-04-01", "purchase", 600.0),
    ("c", "2024-05-15", "purchase", 700.0),
    ("c", "2024-05-30", "purchase", 800.0),
    # d: only after END: in neither column.
    ("d", "2024-06-02", "purchase", 50.0),
)


def test_each_customer_moves_from_their_segment_at_start_to_their_segment_at_end() -> None:
    found = migration_matrix(HISTORY, SEGMENTER, START, END)
    assert found.segments == (NOT_YET_A_CUSTOMER, "Champions", "Lost")
    assert found.flows == (
        Flow(NOT_YET_A_CUSTOMER, "Champions", 1, 2100.0),
        Flow("Champions", "Lost", 1, 2400.0),
        Flow("Lost", "Champions", 1, 1620.0),  # net: the cancellation counts
    )
    assert (found.customers_at_start, found.customers_at_end) == (2, 3)


def test_the_pairs_are_the_segmenter_on_features_computed_at_each_clock() -> None:
    """An independent path: `compute_features` at each clock, one customer at a time."""

    def segment_at(customer: str, clock: datetime) -> str:
        mine = HISTORY.filter(pl.col("customer_id") == customer)
        features = compute_features(mine, clock)
        return SEGMENTER.segment_names(features)[0] if features.height else NOT_YET_A_CUSTOMER

    expected: dict[tuple[str, str], int] = {}
    for customer in ("a", "b", "c"):
        pair = (segment_at(customer, START), segment_at(customer, END))
        expected[pair] = expected.get(pair, 0) + 1
    found = migration_matrix(HISTORY, SEGMENTER, START, END)
    assert {(f.source, f.target): f.customers for f in found.flows} == expected


def test_dates_before_all_orders_give_an_empty_matrix() -> None:
    early = datetime(2020, 1, 1, tzinfo=UTC)
    found = migration_matrix(HISTORY, SEGMENTER, early, early.replace(year=2021))
    assert (found.flows, found.customers_at_start, found.customers_at_end) == ((), 0, 0)


def test_a_date_is_the_end_of_its_day_but_never_after_the_tenant_clock() -> None:
    clock = datetime(2024, 6, 2, 9, 30, tzinfo=UTC)
    assert date_clock(date(2024, 5, 31), clock) == datetime(2024, 6, 1, tzinfo=UTC)
    assert date_clock(date(2024, 6, 2), clock) == clock


def test_the_range_defaults_to_the_90_days_up_to_the_latest_orders_day() -> None:
    clock = datetime(2011, 12, 9, 12, 50, tzinfo=UTC)
    assert migration_range(None, None, clock) == (date(2011, 9, 10), date(2011, 12, 9))
    assert migration_range(None, date(2011, 6, 30), clock) == (date(2011, 4, 1), date(2011, 6, 30))
    assert migration_range(date(2000, 1, 1), None, clock) == (date(2000, 1, 1), date(2011, 12, 9))
    with pytest.raises(InvalidRange) as after:
        migration_range(None, date(2011, 12, 10), clock)
    assert after.value.field == "to"
    with pytest.raises(InvalidRange) as reversed_:
        migration_range(date(2011, 12, 9), None, clock)
    assert reversed_.value.field == "from"
