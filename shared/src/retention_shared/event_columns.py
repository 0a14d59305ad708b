"""`OrderEvent`s as polars columns: one schema for everything that holds events in bulk.

Ingest's file pipeline produces events in this shape and the trainer's lake stores them in it;
`orders_from_event_columns` (features) turns them into the feature definition's orders frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from retention_shared.events import OrderEvent

ORDER_LINE_STRUCT = pl.Struct(
    {"product_id": pl.String(), "quantity": pl.Float64(), "unit_price": pl.Float64()}
)
ORDER_EVENT_SCHEMA = pl.Schema(
    {
        "event_id": pl.String(),
        "tenant_id": pl.String(),
        "order_id": pl.String(),
        "customer_id": pl.String(),
        "occurred_at": pl.Datetime("us", "UTC"),
        "kind": pl.String(),
        "lines": pl.List(ORDER_LINE_STRUCT),
        "total": pl.Float64(),
        "currency": pl.String(),
        "country": pl.String(),
        "source": pl.String(),
        "version": pl.Int64(),
        "withdrawn": pl.Boolean(),
    }
)


def order_event_frame(events: Iterable[OrderEvent]) -> pl.DataFrame:
    """`OrderEvent`s as one frame in `ORDER_EVENT_SCHEMA` (what a consumer stores in bulk)."""
    events = list(events)
    return pl.DataFrame(
        {
            "event_id": [e.event_id for e in events],
            "tenant_id": [e.tenant_id for e in events],
            "order_id": [e.order_id for e in events],
            "customer_id": [e.customer_id for e in events],
            "occurred_at": [e.occurred_at for e in events],
            "kind": [e.kind.value for e in events],
            "lines": [[line.model_dump() for line in e.lines] for e in events],
            "total": [e.total for e in events],
            "currency": [e.currency for e in events],
            "country": [e.country for e in events],
            "source": [e.source for e in events],
            "version": [e.version for e in events],
            "withdrawn": [e.withdrawn for e in events],
        },
        schema=ORDER_EVENT_SCHEMA,
    )
