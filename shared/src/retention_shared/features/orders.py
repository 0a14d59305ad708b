"""The orders frame the feature definition reads: one row per order event, the same everywhere.

The features service builds it from its stored history, the trainer from the lake; both go
through `ORDER_SCHEMA` so a column cannot differ in name, type or time zone between them.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from retention_shared.events import OrderEvent, OrderKind

ORDER_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String(),
        "customer_id": pl.String(),
        "order_id": pl.String(),
        "occurred_at": pl.Datetime("us", "UTC"),
        # "purchase" | "cancellation" (OrderKind values).
        "kind": pl.String(),
        # Signed: negative for cancellations, so summing totals nets cancellations against spend.
        "total": pl.Float64(),
        # Sum of |quantity| over the order's lines.
        "items": pl.Float64(),
        # The order's distinct product ids, sorted (or `CATEGORICAL_PRODUCTS`, see below).
        "products": pl.List(pl.String()),
    }
)

# `products` as the trainer's lake stores them, which `conform_orders` keeps as they are: the
# feature code only needs codes, and casting ~1M id strings to codes is a fifth of a training set.
# Global categories: each product id is interned once per process, which a catalogue bounds.
CATEGORICAL_PRODUCTS = pl.List(pl.Categorical())

# What a scorer keeps per customer to move clock features forward (see `compact_history`).
HISTORY_COLUMNS: tuple[str, ...] = ("tenant_id", "customer_id", "occurred_at", "kind", "total")

_KINDS = frozenset(k.value for k in OrderKind)


def orders_frame(events: Iterable[OrderEvent]) -> pl.DataFrame:
    """The orders frame of some `OrderEvent`s (any order; the feature code sorts)."""
    rows = [
        (
            event.tenant_id,
            event.customer_id,
            event.order_id,
            event.occurred_at,
            event.kind.value,
            event.total,
            float(sum(abs(line.quantity) for line in event.lines)),
            sorted({line.product_id for line in event.lines}),
        )
        for event in events
    ]
    return pl.DataFrame(rows, schema=ORDER_SCHEMA, orient="row")


def line_summaries() -> dict[str, pl.Expr]:
    """`items` and `products` of `ORDER_SCHEMA` from an order event's `lines` (a list of structs)."""
    lines = pl.col("lines").list
    return {
        "items": lines.eval(pl.element().struct.field("quantity").abs()).list.sum(),
        "products": lines.eval(pl.element().struct.field("product_id")).list.unique().list.sort(),
    }


def orders_from_event_columns(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The orders frame of order events held as columns (the `OrderEvent` fields, `lines` a list
    of structs) — as ingest's file pipeline and the trainer's lake hold them; vectorized."""
    return (
        events.lazy()
        .select(
            "tenant_id",
            "customer_id",
            "order_id",
            "occurred_at",
            "kind",
            "total",
            **line_summaries(),
        )
        .cast(ORDER_SCHEMA)
        .collect()
    )


def empty_orders() -> pl.DataFrame:
    return pl.DataFrame(schema=ORDER_SCHEMA)


def conform_orders(
    orders: pl.DataFrame | pl.LazyFrame, columns: Iterable[str] = ORDER_SCHEMA
) -> pl.LazyFrame:
    """Check the needed columns and cast them to `ORDER_SCHEMA` (any time zone becomes UTC;
    categorical `products` stay categorical).

    Raises ValueError naming a missing column, a naive `occurred_at` or an unknown `kind`.
    """
    schema = orders.collect_schema()
    names = schema.names()
    wanted = list(columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(f"orders frame is missing column(s) {', '.join(missing)}")
    dtype = schema["occurred_at"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise ValueError(
            f"orders column occurred_at must be a time-zone-aware Datetime, not {dtype}"
        )
    frame = orders.lazy().select(
        [
            pl.col("occurred_at").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
            if c == "occurred_at"
            else pl.col(c)
            if c == "products" and schema[c] == CATEGORICAL_PRODUCTS
            else pl.col(c).cast(ORDER_SCHEMA[c])
            for c in wanted
        ]
    )
    # One small pass: a null or NaN would otherwise surface as a null feature much later.
    checks = frame.select(
        unknown_kinds=pl.col("kind").filter(~pl.col("kind").is_in(list(_KINDS))).unique().implode(),
        **{f"null_{c}": pl.col(c).null_count() for c in wanted if c != "products"},
        **{f"nan_{c}": pl.col(c).is_nan().sum() for c in ("total", "items") if c in wanted},
    ).collect()
    bad = [
        f"{name.partition('_')[2]} has {count} {name.partition('_')[0].upper()} value(s)"
        for name, count in checks.drop("unknown_kinds").row(0, named=True).items()
        if count
    ]
    if bad:
        raise ValueError(f"orders column {'; '.join(bad)}")
    unknown = checks.item(0, "unknown_kinds").to_list()
    if unknown:
        shown = ", ".join(sorted(repr(k) for k in unknown))
        raise ValueError(f"orders column kind has value(s) {shown}; expected purchase|cancellation")
    return frame
