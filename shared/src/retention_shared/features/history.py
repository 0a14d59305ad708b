"""Carrying the compact history on `CustomerFeatures`, and reading it back on the scoring side.

The features service puts each customer's `compact_history` into `OrderHistorySummary.orders`;
the scorer turns the events it holds back into the two frames `recompute_clock_features` takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl

from retention_shared.events import CustomerFeatures, HistoryOrder, OrderHistorySummary, OrderKind
from retention_shared.features.compute import Clock, Orders, clock_keys, compact_history
from retention_shared.features.orders import HISTORY_COLUMNS, ORDER_SCHEMA, conform_orders
from retention_shared.features.registry import FEATURE_NAMES

CustomerKey = tuple[str, str]


def history_summaries(orders: Orders, as_of: Clock) -> dict[CustomerKey, OrderHistorySummary]:
    """`OrderHistorySummary` (with the compact history) per (tenant_id, customer_id) at `as_of`."""
    frame = conform_orders(orders, HISTORY_COLUMNS)
    if isinstance(as_of, datetime):
        upto = frame.filter(pl.col("occurred_at") <= as_of)
    else:
        keys = clock_keys(as_of)
        clocks = as_of.lazy().select(*(pl.col(k).cast(pl.String) for k in keys), "as_of")
        upto = frame.join(clocks, on=keys).filter(pl.col("occurred_at") <= pl.col("as_of"))
    purchase = pl.col("kind") == OrderKind.PURCHASE.value
    counts = (
        upto.group_by("tenant_id", "customer_id")
        .agg(
            first_purchase_at=pl.col("occurred_at").filter(purchase).min(),
            last_purchase_at=pl.col("occurred_at").filter(purchase).max(),
            last_event_at=pl.col("occurred_at").max(),
            purchase_orders=purchase.sum(),
            cancellations=(~purchase).sum(),
        )
        .collect()
    )
    kept: dict[CustomerKey, list[HistoryOrder]] = {}
    for tenant, customer, at, kind, total in compact_history(orders, as_of).iter_rows():
        # model_construct: the values are our own computed, typed ones (no re-validation).
        kept.setdefault((tenant, customer), []).append(
            HistoryOrder.model_construct(occurred_at=at, kind=OrderKind(kind), total=total)
        )
    return {
        (row["tenant_id"], row["customer_id"]): OrderHistorySummary.model_construct(
            first_purchase_at=row["first_purchase_at"],
            last_purchase_at=row["last_purchase_at"],
            last_event_at=row["last_event_at"],
            purchase_orders=row["purchase_orders"],
            cancellations=row["cancellations"],
            orders=kept[(row["tenant_id"], row["customer_id"])],
        )
        for row in counts.iter_rows(named=True)
    }


def history_frame(events: Iterable[CustomerFeatures]) -> pl.DataFrame:
    """The compact histories carried by `events`, as the `history` of `recompute_clock_features`."""
    rows = [
        (event.tenant_id, event.customer_id, order.occurred_at, order.kind.value, order.total)
        for event in events
        for order in event.history.orders
    ]
    return pl.DataFrame(rows, schema={c: ORDER_SCHEMA[c] for c in HISTORY_COLUMNS}, orient="row")


def features_frame(events: Iterable[CustomerFeatures]) -> pl.DataFrame:
    """`events`' vectors as a feature frame (`tenant_id, customer_id, as_of`, `FEATURE_NAMES`)."""
    rows = [
        (
            event.tenant_id,
            event.customer_id,
            event.as_of,
            *(event.features[n] for n in FEATURE_NAMES),
        )
        for event in events
    ]
    schema: dict[str, pl.DataType] = {
        "tenant_id": pl.String(),
        "customer_id": pl.String(),
        "as_of": pl.Datetime("us", "UTC"),
        **{n: pl.Float64() for n in FEATURE_NAMES},
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
