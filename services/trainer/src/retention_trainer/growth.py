"""When streamed orders have grown a tenant's lake enough to retrain on (no I/O).

The baseline is what the tenant's latest run read from the lake (its record's `data`: orders and
last order time), so the rule survives restarts: the run history and the lake are its state.
A tenant without a run gets its first one from an upload, a request or the schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

__all__ = ["growth_reason", "growth_since"]


def growth_since(data: dict[str, Any] | None) -> tuple[int, datetime | None] | None:
    """(orders, last order time) a run read, from its record's `data`; None if it read nothing."""
    if not data or "orders" not in data:
        return None
    last = data.get("last_order_at")
    return int(data["orders"]), datetime.fromisoformat(last) if last else None


def growth_reason(
    baseline: tuple[int, datetime | None],
    now: tuple[int, datetime | None],
    *,
    orders_share: float,
    days: float,
) -> str | None:
    """Why the lake (`now`: orders, last order time) has grown enough since `baseline` to
    retrain, or None. `orders_share` and `days` of 0 turn their rule off."""
    before_orders, before_last = baseline
    orders, last = now
    new_orders = orders - before_orders
    if orders_share > 0 and new_orders > 0 and new_orders >= orders_share * before_orders:
        share = f"{new_orders / before_orders:.0%}" if before_orders else "all"
        return (
            f"{new_orders} new orders since the latest run ({share} of its {before_orders}; "
            f"RETENTION_RETRAIN_GROWTH_ORDERS_SHARE={orders_share:g})"
        )
    if days > 0 and last is not None:
        if before_last is None:
            return "orders in a lake the latest run found empty"
        gained = last - before_last
        if gained >= timedelta(days=days):
            return (
                f"{gained.total_seconds() / 86_400:.0f} days of new data since the latest run "
                f"(last order {before_last.date()} → {last.date()}; "
                f"RETENTION_RETRAIN_GROWTH_DAYS={days:g})"
            )
    return None
