"""The RFM summary at a cutoff: the ``(x, t_x, T, z̄)`` input of BG/NBD and Gamma-Gamma, in days.

Convention (as in Fader, Hardie & Lee 2005 and the usual BG/NBD practice): a *transaction* is a
customer's purchase **day**. All purchase orders of one customer on one calendar day (in the
timezone of ``occurred_at``, UTC for the lake) are counted once, with the day's total as its
value. Then, per customer, using only purchases at or before the cutoff:

- the first purchase day is time 0 and is not counted (it is not a *repeat* purchase);
- ``x``: number of purchase days after the first one;
- ``t_x``: days from the first to the last purchase day (0 when ``x = 0``);
- ``T``: days from the first purchase day to the cutoff's day (so ``0 ≤ t_x ≤ T``);
- ``mean_spend``: mean value of the ``x`` repeat purchase days (0 when ``x = 0``), the ``z̄`` of
  Gamma-Gamma, which excludes the first purchase.

Only ``kind == "purchase"`` rows count; cancellations are ignored (the spend is gross, which
is what the Gamma-Gamma model of positive transaction values describes). Customers whose first
purchase is after the cutoff are not in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl
from numpy.typing import NDArray

__all__ = ["RFMSummary", "rfm_summary"]

REQUIRED_COLUMNS = ("customer_id", "occurred_at", "kind", "total")
PURCHASE = "purchase"


@dataclass(frozen=True, slots=True)
class RFMSummary:
    """Per-customer arrays, aligned and sorted by ``customer_id``; times in days."""

    customer_id: NDArray[np.object_]
    x: NDArray[np.float64]
    t_x: NDArray[np.float64]
    T: NDArray[np.float64]
    mean_spend: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.x.size)


def _cutoff_literal(cutoff: datetime, dtype: pl.DataType) -> pl.Expr:
    """The cutoff in the column's timezone convention (naive cutoffs are taken as that zone)."""
    time_zone = getattr(dtype, "time_zone", None)
    if time_zone is None:
        naive = cutoff.astimezone(UTC).replace(tzinfo=None) if cutoff.tzinfo else cutoff
        return pl.lit(naive, dtype=pl.Datetime("us"))
    if cutoff.tzinfo is None:
        return pl.lit(cutoff, dtype=pl.Datetime("us")).dt.replace_time_zone(time_zone)
    return pl.lit(cutoff).dt.convert_time_zone(time_zone)


def rfm_summary(orders: pl.DataFrame, cutoff: datetime) -> RFMSummary:
    """Summarize an order history at ``cutoff`` into BG/NBD / Gamma-Gamma arrays (in days).

    ``orders`` has at least ``customer_id``, ``occurred_at`` (datetime), ``kind`` and ``total``
    (the ``OrderEvent`` fields); other columns are ignored. Orders with
    ``occurred_at <= cutoff`` are used. See the module docstring for the one-transaction-per-day
    convention. Raises ``ValueError`` naming any missing column.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in orders.columns]
    if missing:
        raise ValueError(f"orders is missing column(s): {', '.join(missing)}")
    dtype = orders.schema["occurred_at"]
    if not isinstance(dtype, pl.Datetime):
        raise ValueError(f"orders.occurred_at must be a datetime column, got {dtype}")
    cutoff_at = _cutoff_literal(cutoff, dtype)

    days = (
        orders.lazy()
        .filter((pl.col("kind").cast(pl.String) == PURCHASE) & (pl.col("occurred_at") <= cutoff_at))
        .group_by(
            pl.col("customer_id").cast(pl.String), pl.col("occurred_at").dt.date().alias("day")
        )
        .agg(pl.col("total").sum().cast(pl.Float64).alias("spend"))
    )
    summary = (
        days.with_columns(pl.col("day").min().over("customer_id").alias("first_day"))
        .group_by("customer_id")
        .agg(
            (pl.len() - 1).cast(pl.Float64).alias("x"),
            (pl.col("day").max() - pl.col("first_day").first()).dt.total_days().alias("t_x"),
            pl.col("first_day").first(),
            pl.col("spend").filter(pl.col("day") != pl.col("first_day")).mean().alias("z"),
        )
        .with_columns(
            (cutoff_at.dt.date() - pl.col("first_day")).dt.total_days().cast(pl.Float64).alias("T"),
            pl.col("t_x").cast(pl.Float64),
            pl.col("z").fill_null(0.0).alias("mean_spend"),
        )
        .sort("customer_id")
        .collect()
    )
    return RFMSummary(
        customer_id=summary["customer_id"].to_numpy().astype(object),
        x=summary["x"].to_numpy().astype(np.float64),
        t_x=summary["t_x"].to_numpy().astype(np.float64),
        T=summary["T"].to_numpy().astype(np.float64),
        mean_spend=summary["mean_spend"].to_numpy().astype(np.float64),
    )
