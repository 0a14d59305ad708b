"""`OrderEvent`s as polars columns: one schema for everything that holds events in bulk.

Ingest's file pipeline produces events in this shape and the trainer's lake stores them in it;
`orders_from_event_columns` (features) turns them into the feature definition's orders frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from retention_shared.events import OrderEvent

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


def order_event_columns(events: Iterable[OrderEvent]) -> pl.DataFrame:
    """Decoded events as a frame of `ORDER_EVENT_SCHEMA`."""
    rows = [event.model_dump(include=set(ORDER_EVENT_SCHEMA)) for event in events]
    return pl.DataFrame(rows, schema=ORDER_EVENT_SCHEMA)
