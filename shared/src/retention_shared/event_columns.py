"""`OrderEvent`s as polars columns: one schema for everything that holds events in bulk.

Ingest's file pipeline produces events in this shape and the trainer's lake stores them in it;
`orders_from_event_columns` (features) turns them into the feature definition's orders frame.
"""

from __future__ import annotations

import polars as pl

ORDER_LINE_STRUCT = pl.Struct(
    {"product_id": pl.String, "quantity": pl.Float64, "unit_price": pl.Float64}
)
ORDER_EVENT_SCHEMA = pl.Schema(
    {
        "event_id": pl.String,
        "tenant_id": pl.String,
        "order_id": pl.String,
        "customer_id": pl.String,
        "occurred_at": pl.Datetime("us", "UTC"),
        "kind": pl.String,
        "lines": pl.List(ORDER_LINE_STRUCT),
        "total": pl.Float64,
        "currency": pl.String,
        "country": pl.String,
        "source": pl.String,
    }
)
