"""Clean order lines -> `OrderEvent` rows (a polars frame) -> JSON payloads, all vectorized.

Lines become one event per (tenant, order, customer, kind): an invoice with purchase and
cancellation lines is two events, their ids `order_event_id(tenant, order, kind)` — deterministic,
so the same file ingested twice yields the same ids. The rules that need every line of a file
(`duplicate_line`, `conflicting_customer_id`, `order_total_out_of_range`, see
`cleaning`) are applied here, before grouping.

Event frame columns are exactly `OrderEvent`'s fields; `order_event_payloads` turns a batch into
the JSON bytes `OrderEvent.to_bytes()` would give (as far as `decode_event` can tell), without
building a pydantic object per event.
"""

from __future__ import annotations

import polars as pl

from retention_ingest.cleaning import SYNTHETIC_PRODUCT_ID
from retention_shared.event_columns import ORDER_EVENT_SCHEMA
from retention_shared.events import SCHEMA_VERSION, OrderKind, order_event_id

# The shared shape of events held in bulk (the trainer's lake stores the same).
EVENT_SCHEMA = ORDER_EVENT_SCHEMA
EVENT_COLUMNS = tuple(ORDER_EVENT_SCHEMA)
_KINDS = {kind.value: kind for kind in OrderKind}


def conflicting_orders(lines: pl.LazyFrame) -> pl.LazyFrame:
    """(order_id, kind) pairs whose lines name more than one customer."""
    return (
        lines.select("order_id", "kind", "customer_id")
        .unique()
        .group_by("order_id", "kind")
        .agg(pl.len().alias("customers"))
        .filter(pl.col("customers") > 1)
        .select("order_id", "kind")
    )


def flag_file_level_rejects(
    lines: pl.LazyFrame, conflicts: pl.LazyFrame, max_order_total: float
) -> pl.LazyFrame:
    """`lines` with a `reason`: `duplicate_line`, `conflicting_customer_id`, then
    `order_total_out_of_range`, else null.

    Copies are lines with the same customer and `row_hash` (the whole row as read); the first
    copy is the one with the lowest row number, so the result does not depend on the order lines
    are stored in. An order's total counts each line once (copies are dropped anyway); every
    line of an order and kind is in `lines` (they share a customer, so a bucket), except for
    conflicting orders, which are rejected whole before their total matters.
    """
    duplicate = pl.col("row") != pl.col("row").min().over("customer_id", "row_hash")
    conflicting = pl.struct("order_id", "kind").is_in(
        conflicts.select(pl.struct("order_id", "kind")).collect().to_series().implode()
    )
    # Bounded per line (|quantity| and price, see `cleaning`), so the sum stays finite.
    order_total = (
        pl.when(pl.col("duplicate"))
        .then(pl.lit(0.0))
        .otherwise(pl.col("amount").abs())
        .sum()
        .over("order_id", "kind")
    )
    return (
        lines.with_columns(duplicate=duplicate)
        .with_columns(
            reason=pl.when(pl.col("duplicate"))
            .then(pl.lit("duplicate_line"))
            .when(conflicting)
            .then(pl.lit("conflicting_customer_id"))
            .when(order_total > max_order_total)
            .then(pl.lit("order_total_out_of_range"))
            .otherwise(pl.lit(None, pl.String))
        )
        .drop("duplicate")
    )


def build_order_events(
    lines: pl.LazyFrame, *, tenant_id: str, source: str, synthetic_line: bool
) -> pl.DataFrame:
    """Group accepted lines (in file order) into events sorted by time, then file order.

    `synthetic_line` (order_total mappings): one line per event, product `order-total`, quantity
    the sum of quantities, unit price |total| / |quantity|.
    """
    if synthetic_line:
        event_lines = pl.concat_list(
            pl.struct(
                pl.lit(SYNTHETIC_PRODUCT_ID).alias("product_id"),
                pl.col("quantity").sum().alias("quantity"),
                (pl.col("amount").sum().abs() / pl.col("quantity").sum().abs()).alias("unit_price"),
            )
        )
    else:
        # polars keeps the input order within a group: lines stay in file order.
        event_lines = pl.struct("product_id", "quantity", "unit_price")
    events = (
        lines.group_by("customer_id", "order_id", "kind")
        .agg(
            pl.col("occurred_at").min(),
            event_lines.alias("lines"),
            pl.col("amount").sum().round(6).alias("total"),
            pl.col("currency").drop_nulls().first(),
            pl.col("country").drop_nulls().first(),
            pl.col("row").min().alias("first_row"),
        )
        .sort("occurred_at", "first_row")
        .collect()
    )
    event_ids = [
        order_event_id(tenant_id, order_id, _KINDS[kind])
        for order_id, kind in zip(events["order_id"], events["kind"], strict=True)
    ]
    return events.with_columns(
        pl.Series("event_id", event_ids, dtype=pl.String),
        pl.lit(tenant_id).alias("tenant_id"),
        pl.lit(source).alias("source"),
        pl.lit(0).alias("version"),
        pl.lit(False).alias("withdrawn"),
    ).select(pl.col(name).cast(dtype) for name, dtype in EVENT_SCHEMA.items())


def order_event_payloads(events: pl.DataFrame) -> list[bytes]:
    """Each event row as the JSON bytes of an `OrderEvent` (read back by `decode_event`)."""
    if events.is_empty():
        return []
    encoded = events.select(
        pl.struct(
            pl.lit(SCHEMA_VERSION).alias("schema_version"),
            pl.lit("OrderEvent").alias("event_type"),
            *EVENT_COLUMNS,
        ).struct.json_encode()
    )
    return encoded.to_series().cast(pl.Binary).to_list()
