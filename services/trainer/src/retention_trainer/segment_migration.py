"""Segment migration: each customer's segment at two dates, as a from × to matrix (no I/O).

Both ends are segmented by one segmenter (the tenant's champion's) on point-in-time features
from the shared definition: the features at a clock read only the orders at or before it, so the
`from` column is what this model would have said of the customers known then.

- **Dates.** A date ``D`` stands for the end of that UTC day, as training cutoffs do
  (:func:`~retention_trainer.training_set.cutoff_instant`), but never later than the tenant
  clock (the latest order in the lake): the tenant's latest day is the tenant clock itself, so
  the ``to`` end of the default range sees the population scoring serves.
- **Not yet a customer.** A customer with no order at or before ``from`` is counted under
  :data:`NOT_YET_A_CUSTOMER` on the ``from`` side. It is not called "New": that is one of the
  segmenter's own personas, which a customer can already have at ``from``.
- **Revenue** of a flow: the net spend to date at ``to`` (the ``monetary`` feature: purchases
  plus negative cancellations up to ``to``) of its customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from retention_bundle.models.segmenter import Segmenter
from retention_shared.features import compute_features_at_cutoffs
from retention_trainer.training_set import cutoff_instant

__all__ = [
    "DEFAULT_DAYS",
    "NOT_YET_A_CUSTOMER",
    "Flow",
    "InvalidRange",
    "SegmentMigration",
    "check_order",
    "date_clock",
    "migration_matrix",
    "migration_range",
]

NOT_YET_A_CUSTOMER = "Not yet a customer"
# Without `from`: this many days before `to`.
DEFAULT_DAYS = 90


class InvalidRange(ValueError):
    """A date the request may not ask for; `field` is the query parameter."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Flow:
    source: str
    target: str
    customers: int
    revenue: float


@dataclass(frozen=True, slots=True)
class SegmentMigration:
    # NOT_YET_A_CUSTOMER first, then the segmenter's names in its order.
    segments: tuple[str, ...]
    # Only pairs with customers, in `segments` order of source, then target.
    flows: tuple[Flow, ...]
    customers_at_start: int
    customers_at_end: int


def check_order(start: date, end: date) -> None:
    if start >= end:
        raise InvalidRange("from", f"must be before to ({end.isoformat()})")


def migration_range(
    start: date | None, end: date | None, tenant_clock: datetime
) -> tuple[date, date]:
    """The dates asked for, defaults filled in: `to` is the tenant clock's day, `from` is
    :data:`DEFAULT_DAYS` before `to`. A `to` after the latest order's day has no data yet."""
    latest = tenant_clock.astimezone(UTC).date()
    end = latest if end is None else end
    if end > latest:
        raise InvalidRange(
            "to", f"after the latest order ({latest.isoformat()}): no data there yet"
        )
    start = end - timedelta(days=DEFAULT_DAYS) if start is None else start
    check_order(start, end)
    return start, end


def date_clock(day: date, tenant_clock: datetime) -> datetime:
    """The instant a migration date stands for: the end of the day, at most the tenant clock."""
    return min(cutoff_instant(day), tenant_clock)


def migration_matrix(
    orders: pl.DataFrame, segmenter: Segmenter, start: datetime, end: datetime
) -> SegmentMigration:
    """Customers per (segment at `start`, segment at `end`) and their net spend at `end`.

    `orders` is one tenant's orders frame (``ORDER_SCHEMA``); `start` <= `end` are aware instants.
    """
    segments = (NOT_YET_A_CUSTOMER, *segmenter.names)
    clocks = pl.DataFrame({"cutoff": [start, end]}, schema={"cutoff": pl.Datetime("us", "UTC")})
    # One pass of the shared feature code over both clocks.
    features = compute_features_at_cutoffs(orders, clocks)
    names = np.asarray(segmenter.names, dtype=object)[segmenter.assign(features)]
    assigned = features.select(
        "customer_id", "cutoff", "monetary", segment=pl.Series(names.tolist(), dtype=pl.String)
    )
    at_start = assigned.filter(pl.col("cutoff") == start).select("customer_id", source="segment")
    at_end = assigned.filter(pl.col("cutoff") == end)
    # Everyone known at `start` is known at `end` (`end` sees a superset of the orders).
    rank = {name: i for i, name in enumerate(segments)}
    matrix = (
        at_end.join(at_start, on="customer_id", how="left")
        .group_by(pl.col("source").fill_null(NOT_YET_A_CUSTOMER), target="segment")
        .agg(customers=pl.len(), revenue=pl.col("monetary").sum())
        .sort(
            pl.col("source").replace_strict(rank, return_dtype=pl.Int32),
            pl.col("target").replace_strict(rank, return_dtype=pl.Int32),
        )
    )
    flows = tuple(
        Flow(row["source"], row["target"], int(row["customers"]), round(row["revenue"], 2))
        for row in matrix.iter_rows(named=True)
    )
    return SegmentMigration(segments, flows, at_start.height, at_end.height)
