"""The one feature definition (docs/architecture.md, principles 2 and 3), online and offline alike.

`compute_features` turns an orders frame (`ORDER_SCHEMA`) into one row of `FEATURES` per
customer as of a clock; `compute_features_at_cutoffs` does it for many clocks in one pass;
`compact_history` and `recompute_clock_features` let a scorer move the `CLOCK_FEATURES` to a
later clock without the full history.
"""

from retention_shared.features.compute import (
    HISTORY_DAYS,
    MONEY_SCALE,
    Clock,
    Cutoffs,
    compact_history,
    compute_features,
    compute_features_at_cutoffs,
    recompute_clock_features,
)
from retention_shared.features.history import (
    CustomerKey,
    features_frame,
    history_frame,
    history_summaries,
)
from retention_shared.features.orders import (
    HISTORY_COLUMNS,
    ORDER_SCHEMA,
    conform_orders,
    empty_orders,
    line_summaries,
    orders_frame,
    orders_from_event_columns,
)
from retention_shared.features.registry import (
    CLOCK_FEATURES,
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    MIN_GAP_DAYS,
    TREND_WINDOW_DAYS,
    WINDOWS_DAYS,
    Feature,
    feature_table_markdown,
)

__all__ = [
    "CLOCK_FEATURES",
    "FEATURES",
    "FEATURES_BY_NAME",
    "FEATURE_NAMES",
    "HISTORY_COLUMNS",
    "HISTORY_DAYS",
    "MIN_GAP_DAYS",
    "MONEY_SCALE",
    "ORDER_SCHEMA",
    "TREND_WINDOW_DAYS",
    "WINDOWS_DAYS",
    "Clock",
    "CustomerKey",
    "Cutoffs",
    "Feature",
    "compact_history",
    "compute_features",
    "compute_features_at_cutoffs",
    "conform_orders",
    "empty_orders",
    "feature_table_markdown",
    "features_frame",
    "history_frame",
    "history_summaries",
    "line_summaries",
    "orders_frame",
    "orders_from_event_columns",
    "recompute_clock_features",
]
