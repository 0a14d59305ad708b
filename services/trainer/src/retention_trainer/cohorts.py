"""Cohort retention: customers grouped by the period of their first purchase, followed period by
period. No I/O: an orders frame (`ORDER_SCHEMA`) in, small frames out.

A customer's cohort is the UTC calendar month (or quarter) of their first purchase order, the
calendar the features' `active_months` use. For each cohort and each period since (age 0, 1, …
up to the period of the tenant's last order) a cell holds:

- `customers`: the share of the cohort's customers with a purchase order in that period;
- `orders`: the cohort's purchase orders in that period (as the features' `frequency` counts);
- `revenue`: the cohort's net spend in that period, purchases plus the (negative) cancellations
  dated in it, summed in integer micro-units (as the features' `monetary` and `spend_Nd`).

Orders dated before a customer's first purchase (a cancellation of an order from before the
data, even earlier in the same month) belong to no cell, and a customer with cancellations only
is in no cohort: a cohort starts with a purchase. So a quarter's cell is the sum of its months'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import polars as pl

from retention_shared.events import OrderKind
from retention_shared.features import MONEY_SCALE

__all__ = [
    "CELL_SCHEMA",
    "CohortTable",
    "Metric",
    "Period",
    "cells_between",
    "cohort_rows",
    "cohort_table",
]


class Period(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"


class Metric(StrEnum):
    CUSTOMERS = "customers"
    REVENUE = "revenue"
    ORDERS = "orders"


_MONTHS_IN = {Period.MONTH: 1, Period.QUARTER: 3}

# One row per (cohort, age) reached, ages without activity included (as zeros).
CELL_SCHEMA = pl.Schema(
    {
        "cohort": pl.String(),
        "start": pl.Date(),
        "size": pl.Int64(),
        "age": pl.Int64(),
        "period": pl.String(),
        "customers": pl.Float64(),
        "orders": pl.Int64(),
        "revenue": pl.Float64(),
    }
)


@dataclass(frozen=True)
class CohortTable:
    """Every cell of every cohort, for each period length, and the last order's time."""

    as_of: datetime | None
    cells: dict[Period, pl.DataFrame]


def cohort_table(orders: pl.DataFrame | pl.LazyFrame) -> CohortTable:
    """The cohort cells of an orders frame (one tenant), monthly and quarterly."""
    orders = orders.lazy()
    as_of = orders.select(pl.col("occurred_at").max()).collect().item()
    if as_of is None:
        return CohortTable(None, {p: pl.DataFrame(schema=CELL_SCHEMA) for p in Period})
    activity = _monthly_activity(orders)
    last_month = as_of.year * 12 + as_of.month - 1  # as `_month_index`
    return CohortTable(as_of, {p: _cells(activity, p, last_month) for p in Period})


def cells_between(cells: pl.DataFrame, first: date | None, last: date | None) -> pl.DataFrame:
    """The cells of the cohorts starting in [first, last] (an open end when None)."""
    if first is not None:
        cells = cells.filter(pl.col("start") >= first)
    if last is not None:
        cells = cells.filter(pl.col("start") <= last)
    return cells


def cohort_rows(cells: pl.DataFrame, metric: Metric) -> pl.DataFrame:
    """One row per cohort: cohort, start, size, and `values`, the metric at ages 0, 1, … (as
    far as reached), oldest cohort first."""
    return (
        cells.group_by("cohort", "start", "size", maintain_order=True)
        .agg(values=pl.col(metric.value))
        .sort("start")
    )


def _month_index(moment: pl.Expr) -> pl.Expr:
    """Months since year 0: consecutive months are consecutive integers."""
    return moment.dt.year().cast(pl.Int64) * 12 + moment.dt.month().cast(pl.Int64) - 1


def _monthly_activity(orders: pl.LazyFrame) -> pl.DataFrame:
    """Per customer and month from their first purchase on: purchase orders and net spend
    (micro-units, Int128), with `first`, the month of that first purchase."""
    purchase = pl.col("kind") == OrderKind.PURCHASE.value
    at = pl.col("occurred_at")
    return (
        orders.select("customer_id", "occurred_at", purchase=purchase, total="total")
        # Drops customers without a purchase (a null first purchase) and every order before
        # it, also earlier in its own month: cells then add up across months and quarters.
        .filter(at >= at.filter(pl.col("purchase")).min().over("customer_id"))
        .select(
            "customer_id",
            "purchase",
            month=_month_index(at),
            # Rounded per order, then summed as integers: exact whatever the order of the sum.
            money=(pl.col("total") * MONEY_SCALE).round().cast(pl.Int64),
        )
        .group_by("customer_id", "month")
        # Summed in 128 bits: an order may be 1e18 micro-units, so a few wrap int64.
        .agg(
            orders=pl.col("purchase").sum().cast(pl.Int64),
            money=pl.col("money").cast(pl.Int128).sum(),
        )
        .with_columns(first=pl.col("month").min().over("customer_id"))
        .collect()
    )


def _cells(activity: pl.DataFrame, period: Period, last_month: int) -> pl.DataFrame:
    months = _MONTHS_IN[period]
    per_period = (
        activity.lazy()
        .select(
            "customer_id",
            "orders",
            "money",
            index=pl.col("month") // months,
            cohort_index=pl.col("first") // months,
        )
        .group_by("customer_id", "cohort_index", "index")
        .agg(pl.col("orders").sum(), pl.col("money").sum())
    )
    sizes = per_period.group_by("cohort_index").agg(size=pl.col("customer_id").n_unique())
    active = per_period.group_by("cohort_index", age=pl.col("index") - pl.col("cohort_index")).agg(
        active=(pl.col("orders") > 0).sum(),
        orders=pl.col("orders").sum(),
        money=pl.col("money").sum(),
    )
    # Every age up to the last order's period, so a period without activity is a 0, not a gap.
    grid = sizes.with_columns(
        age=pl.int_ranges(0, last_month // months - pl.col("cohort_index") + 1)
    ).explode("age")
    return (
        grid.join(active, on=["cohort_index", "age"], how="left")
        .select(
            cohort=_label(pl.col("cohort_index"), period),
            start=_start(pl.col("cohort_index"), period),
            size=pl.col("size").cast(pl.Int64),
            age=pl.col("age").cast(pl.Int64),
            period=_label(pl.col("cohort_index") + pl.col("age"), period),
            customers=pl.col("active").fill_null(0) / pl.col("size"),
            orders=pl.col("orders").fill_null(0).cast(pl.Int64),
            # Rounded back to micro-units: polars may divide as a product with 1e-6.
            revenue=(pl.col("money").fill_null(0).cast(pl.Float64) / MONEY_SCALE).round(6),
        )
        .sort("start", "age")
        .collect()
    )


def _start(index: pl.Expr, period: Period) -> pl.Expr:
    month = index * _MONTHS_IN[period]
    return pl.date(month // 12, month % 12 + 1, 1)


def _label(index: pl.Expr, period: Period) -> pl.Expr:
    """`2010-12` for a month, `2011-Q1` for a quarter."""
    if period is Period.MONTH:
        return _start(index, period).dt.strftime("%Y-%m")
    return pl.format("{}-Q{}", index // 4, index % 4 + 1)
