"""Backtesting expected orders and the next-order date against what customers did.

At a test cutoff ``c`` (instant ``i``) with horizon ``H`` (the churn horizon):

- **orders MAE**: mean ``|expected orders − purchase orders in (i, i + H]|`` over the test
  customers (the label ``future_orders`` of the training set);
- **next-order error**: for the customers who did order in ``(i, i + H]`` — the only ones whose
  next order the test window shows — the median of ``|predicted days − actual days|``, where
  actual days run from ``i`` to their first purchase after it. Customers without a date (below
  50% within a year) are left out of the median and counted by ``next_order_dated_share``;
- **hit rate**: of the customers whose predicted date falls within the window, the share who had
  ordered by it. A date that is the 50% point of the customer's time to the next order is met
  about half of the time, so this reads as the dates' calibration.

Only orders after the cutoff are read here, and only to measure; nothing flows back to a model.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from numpy.typing import NDArray

from retention_trainer.training_set import cutoff_instant

__all__ = ["days_to_next_order", "orders_metrics"]

PURCHASE = "purchase"


def days_to_next_order(
    orders: pl.DataFrame, cutoff: date, frame: pl.DataFrame, horizon_days: int
) -> NDArray[np.float64]:
    """Days from the cutoff's instant to each of ``frame``'s customers' first purchase in the
    following ``horizon_days``; NaN for a customer without one."""
    instant = cutoff_instant(cutoff)
    first = (
        orders.lazy()
        .filter(
            pl.col("kind") == PURCHASE,
            pl.col("occurred_at") > instant,
            pl.col("occurred_at") <= instant + timedelta(days=horizon_days),
        )
        .group_by("tenant_id", "customer_id")
        .agg(first=pl.col("occurred_at").min())
    )
    joined = (
        frame.lazy()
        .select("tenant_id", "customer_id")
        .join(first, on=["tenant_id", "customer_id"], how="left", maintain_order="left")
        .select(days=(pl.col("first") - pl.lit(instant)).dt.total_seconds() / 86_400)
        .collect()
    )
    return joined["days"].cast(pl.Float64).fill_null(np.nan).to_numpy()


def _defined(values: NDArray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def orders_metrics(
    actual_orders: NDArray,
    expected_orders: NDArray,
    actual_days: NDArray,
    predicted_days: NDArray,
    horizon_days: int,
) -> dict[str, float]:
    """The report's `OrdersMetrics` (see the module docstring); NaN where nobody qualifies."""
    actual_orders = np.asarray(actual_orders, dtype=float)
    expected_orders = np.asarray(expected_orders, dtype=float)
    ordered = np.isfinite(actual_days)
    dated = np.isfinite(predicted_days)
    both = ordered & dated
    in_window = dated & (predicted_days <= horizon_days)
    met = ordered & (actual_days <= np.where(dated, predicted_days, -1.0))
    return {
        "mae": float(np.mean(np.abs(expected_orders - actual_orders))),
        "next_order_median_abs_days": _defined(np.abs(predicted_days[both] - actual_days[both])),
        "next_order_dated_share": float(both.sum() / ordered.sum()) if ordered.any() else np.nan,
        "next_order_hit_rate": float(met[in_window].mean()) if in_window.any() else np.nan,
    }
