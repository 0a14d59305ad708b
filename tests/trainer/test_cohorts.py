"""Cohort cells on a handful of hand-made orders (no lake): each rule of the definition once."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from retention_shared.features import ORDER_SCHEMA
from retention_trainer.cohorts import Metric, Period, cells_between, cohort_rows, cohort_table


def orders(*rows: tuple[str, str, str, float]) -> pl.DataFrame:
    """(customer, UTC time, kind, total) rows of tenant t."""
    return pl.DataFrame(
        [
            {
                "tenant_id": "t",
                "customer_id": customer,
                "order_id": f"{customer}-{i}",
                "occurred_at": datetime.fromisoformat(at).replace(tzinfo=UTC),
                "kind": kind,
                "total": total,
                "items": 1.0,
                "products": ["p"],
            }
            for i, (customer, at, kind, total) in enumerate(rows)
        ],
        schema=ORDER_SCHEMA,
    )


ORDERS = orders(
    # a: January cohort, nothing in February, back in March; a cancellation nets in January.
    ("a", "2011-01-15 10:00", "purchase", 100.10),
    ("a", "2011-01-20 10:00", "cancellation", -10.05),
    ("a", "2011-03-02 10:00", "purchase", 30.0),
    ("a", "2011-03-03 10:00", "purchase", 5.0),
    # b: a cancellation before the first purchase (of an order from before the data) counts
    # nowhere; a cancellation alone in February is revenue, not an active customer.
    ("b", "2010-12-20 10:00", "cancellation", -99.0),
    ("b", "2011-01-03 10:00", "purchase", 20.0),
    ("b", "2011-02-10 10:00", "cancellation", -5.0),
    # c: cancellations only — in no cohort.
    ("c", "2011-01-05 10:00", "cancellation", -7.0),
    # d: the last minutes of February in UTC: a February customer (UTC calendar months); a
    # cancellation earlier that month, before the first purchase, counts nowhere either.
    ("d", "2011-02-01 10:00", "cancellation", -3.0),
    ("d", "2011-02-28 23:59", "purchase", 12.5),
    # The lake's last order: March is the last period reached.
    ("d", "2011-03-31 08:00", "purchase", 1.0),
)


def cells(period: Period) -> list[tuple]:
    frame = cohort_table(ORDERS).cells[period]
    return frame.select("cohort", "age", "period", "size", "customers", "orders", "revenue").rows()


def test_monthly_cells_follow_each_cohort_to_the_last_orders_month() -> None:
    assert cells(Period.MONTH) == [
        ("2011-01", 0, "2011-01", 2, 1.0, 2, 110.05),
        ("2011-01", 1, "2011-02", 2, 0.0, 0, -5.0),  # reached, nothing bought: 0, not absent
        ("2011-01", 2, "2011-03", 2, 0.5, 2, 35.0),
        ("2011-02", 0, "2011-02", 1, 1.0, 1, 12.5),
        ("2011-02", 1, "2011-03", 1, 1.0, 1, 1.0),
    ]


def test_quarterly_cells_group_the_months_of_a_quarter() -> None:
    assert cells(Period.QUARTER) == [
        ("2011-Q1", 0, "2011-Q1", 3, 1.0, 6, 153.55),
    ]
    table = cohort_table(ORDERS)
    assert table.cells[Period.QUARTER]["start"].to_list() == [date(2011, 1, 1)]
    assert table.as_of == datetime(2011, 3, 31, 8, tzinfo=UTC)


def test_revenue_is_exact_in_micro_units() -> None:
    many = orders(*[("a", "2011-01-01 10:00", "purchase", 0.1)] * 1000)
    assert cohort_table(many).cells[Period.MONTH]["revenue"].to_list() == [100.0]


def test_revenue_past_int64_micro_units_does_not_wrap() -> None:
    # The contract allows 1e12 an order: twenty in one month are 2e19 micro-units (int64 ends
    # at 9.2e18), and a cohort adds up many such customers.
    big = orders(
        *[("a", f"2011-01-{d:02} 10:00", "purchase", 9.99e11) for d in range(1, 21)],
        *[("b", f"2011-01-{d:02} 11:00", "purchase", 9.99e11) for d in range(1, 21)],
    )
    frame = cohort_table(big).cells[Period.MONTH]
    assert frame.select("cohort", "orders", "revenue").rows() == [("2011-01", 40, 40 * 9.99e11)]


def test_rows_per_cohort_hold_one_metric_by_age_and_filter_by_start() -> None:
    monthly = cohort_table(ORDERS).cells[Period.MONTH]
    rows = cohort_rows(monthly, Metric.ORDERS)
    assert rows.rows() == [
        ("2011-01", date(2011, 1, 1), 2, [2, 0, 2]),
        ("2011-02", date(2011, 2, 1), 1, [1, 1]),
    ]
    assert cells_between(monthly, date(2011, 1, 2), None)["cohort"].unique().to_list() == [
        "2011-02"
    ]
    assert cells_between(monthly, None, date(2011, 1, 1))["cohort"].unique().to_list() == [
        "2011-01"
    ]
    assert cells_between(monthly, date(2011, 3, 1), None).is_empty()


def test_an_empty_lake_has_no_cohorts_and_no_clock() -> None:
    table = cohort_table(orders())
    assert table.as_of is None
    assert all(frame.is_empty() for frame in table.cells.values())
    assert cohort_rows(table.cells[Period.MONTH], Metric.REVENUE).is_empty()
