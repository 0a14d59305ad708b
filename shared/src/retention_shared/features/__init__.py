"""The one feature definition (docs/architecture.md, principles 2 and 3), online and offline alike.

`compute_features` turns an orders frame (`ORDER_SCHEMA`) into one row of `FEATURES` per
customer as of a clock; `compute_features_at_cutoffs` does it for many clocks in one pass;
`compact_history` and `recompute_clock_features` let a scorer move the `CLOCK_FEATURES` to a
later clock without the full history.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

# The registry (names, labels, units) is plain Python and loads now; the code that computes
# features needs polars and loads on first use, so a process that only shows feature names (the
# console) does not carry polars (~25 MiB resident).
if TYPE_CHECKING:
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

_LAZY = {
    "HISTORY_DAYS": "compute",
    "MONEY_SCALE": "compute",
    "Clock": "compute",
    "Cutoffs": "compute",
    "compact_history": "compute",
    "compute_features": "compute",
    "compute_features_at_cutoffs": "compute",
    "recompute_clock_features": "compute",
    "CustomerKey": "history",
    "features_frame": "history",
    "history_frame": "history",
    "history_summaries": "history",
    "HISTORY_COLUMNS": "orders",
    "ORDER_SCHEMA": "orders",
    "conform_orders": "orders",
    "empty_orders": "orders",
    "line_summaries": "orders",
    "orders_frame": "orders",
    "orders_from_event_columns": "orders",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
