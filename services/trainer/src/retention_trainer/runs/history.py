"""How much order history a tenant has, and whether it is enough to train on (no I/O)."""

from __future__ import annotations

from typing import Any

import polars as pl

from retention_shared.config import Settings

__all__ = ["history_shortfall", "orders_summary"]


def orders_summary(orders: pl.DataFrame) -> dict[str, Any]:
    """How much history an orders frame holds."""
    first, last = orders["occurred_at"].min(), orders["occurred_at"].max()
    return {
        "orders": orders.height,
        "customers": orders["customer_id"].n_unique(),
        "first_order_at": first.isoformat() if first else None,
        "last_order_at": last.isoformat() if last else None,
    }


def history_shortfall(orders: pl.DataFrame, settings: Settings) -> str | None:
    """Why the orders are too little to train on, or None when they are enough."""
    if orders.is_empty():
        return "no orders in the lake for this tenant"
    customers = orders.filter(pl.col("kind") == "purchase")["customer_id"].n_unique()
    first, last = orders["occurred_at"].min(), orders["occurred_at"].max()
    days = (last - first).total_seconds() / 86_400
    problems = []
    if customers < settings.min_training_customers:
        problems.append(
            f"{customers} customers with a purchase, fewer than the "
            f"{settings.min_training_customers} needed (RETENTION_MIN_TRAINING_CUSTOMERS)"
        )
    if days < settings.min_training_history_days:
        problems.append(
            f"{days:.0f} days of history, less than the {settings.min_training_history_days} "
            "needed (RETENTION_MIN_TRAINING_HISTORY_DAYS)"
        )
    return "too little history: " + "; ".join(problems) if problems else None
