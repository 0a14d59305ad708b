"""The feature registry: every feature's name, meaning and unit, shared by code, docs and models.

Order matters: it is the column order of every feature frame and of the model's feature schema.
`depends_on_clock` marks the features that move when `as_of` moves although no order arrived
(recency-like and window-based ones); a scorer recomputes exactly these against a newer clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_SECONDS = 86_400
# Window lengths in days for `orders_<N>d` / `spend_<N>d`; the longest one bounds the history a
# scorer needs to move window features to a later clock.
WINDOWS_DAYS: tuple[int, ...] = (30, 90, 180, 365)
TREND_WINDOW_DAYS = 90
# A mean gap shorter than this is treated as this long in `recency_gap_ratio`, so two orders minutes
# apart do not blow the ratio up to thousands.
MIN_GAP_DAYS = 1.0
# `orders_season_last_year` counts the orders of the SEASON_DAYS after the clock, one year
# earlier: (as_of − 365d, as_of − 365d + SEASON_DAYS]. 90 days: the churn horizon's length.
YEAR_DAYS = 365
SEASON_DAYS = 90
# The calendar months (UTC) of the fourth quarter, the Christmas season of most retailers.
Q4_MONTHS: tuple[int, ...] = (10, 11, 12)
# The clock's calendar month (1-12) as a point on the unit circle, at the middle of the month:
# (sin, cos) of 2π·(month − 0.5)/12. A table, so batch and streaming code read the same bits.
SEASON_BY_MONTH: dict[int, tuple[float, float]] = {
    month: (math.sin(2 * math.pi * (month - 0.5) / 12), math.cos(2 * math.pi * (month - 0.5) / 12))
    for month in range(1, 13)
}


@dataclass(frozen=True)
class Feature:
    name: str
    meaning: str
    unit: str
    depends_on_clock: bool = False
    # The feature in a few words, for people (the console's tables, a report).
    label: str = ""


def _window_features() -> list[Feature]:
    features = []
    for days in WINDOWS_DAYS:
        features.append(
            Feature(
                f"orders_{days}d",
                f"Purchase orders in the last {days} days: occurred_at in (as_of - {days}d, as_of].",
                "orders",
                depends_on_clock=True,
                label=f"Orders in the last {days} days",
            )
        )
        features.append(
            Feature(
                f"spend_{days}d",
                f"Net spend (purchases minus cancellations) in (as_of - {days}d, as_of].",
                "currency",
                depends_on_clock=True,
                label=f"Net spend in the last {days} days",
            )
        )
    return features


FEATURES: tuple[Feature, ...] = (
    Feature(
        "recency_days",
        "Days from the last purchase to as_of. Without any purchase: days from the last event "
        "(a cancellation) to as_of.",
        "days",
        depends_on_clock=True,
        label="Days since the last purchase",
    ),
    Feature("frequency", "Purchase orders up to as_of.", "orders", label="Orders so far"),
    Feature(
        "monetary",
        "Net spend up to as_of: purchase totals plus (negative) cancellation totals.",
        "currency",
        label="Net spend so far",
    ),
    Feature(
        "avg_order_value",
        "monetary / frequency: net spend per purchase order; 0 without purchases.",
        "currency",
        label="Average order value",
    ),
    Feature(
        "avg_items_per_order",
        "Items (sum of |quantity|) of purchase orders / frequency; 0 without purchases.",
        "items",
        label="Items per order",
    ),
    Feature(
        "tenure_days",
        "Days from the first purchase to as_of. Without any purchase: from the first event.",
        "days",
        depends_on_clock=True,
        label="Days since the first purchase",
    ),
    *_window_features(),
    Feature(
        "spend_trend",
        "(g1 - g0) / (g1 + g0), where g1 is the gross purchase value in (as_of - 90d, as_of] "
        "and g0 in (as_of - 180d, as_of - 90d]; 0 when both are 0. In [-1, 1]: +1 all recent, "
        "-1 nothing recent. Gross (not net) so it is well defined and a late cancellation of an "
        "old order does not read as a trend.",
        "ratio",
        depends_on_clock=True,
        label="Spend trend, last 90 days against the 90 before",
    ),
    Feature(
        "gap_mean_days",
        "Mean days between consecutive purchase occasions (distinct purchase instants) = "
        "(last - first purchase) / (occasions - 1); 0 with fewer than two occasions.",
        "days",
        label="Usual days between purchases",
    ),
    Feature(
        "gap_std_days",
        "Population standard deviation (ddof=0) of the days between consecutive purchase "
        "occasions; 0 with fewer than two occasions (and, by ddof=0, with exactly one gap).",
        "days",
        label="Spread of the days between purchases",
    ),
    Feature(
        "days_past_expected_order",
        "recency_days - gap_mean_days: days since the next order was due (negative: not yet "
        "due). With fewer than two occasions gap_mean_days is 0, so this equals recency_days.",
        "days",
        depends_on_clock=True,
        label="Days past the expected next order",
    ),
    Feature(
        "recency_gap_ratio",
        "recency_days / max(gap_mean_days, 1): how many usual gaps have passed since the last "
        "purchase (gap-normalized recency). With fewer than two occasions the divisor is 1 day.",
        "ratio",
        depends_on_clock=True,
        label="Usual gaps since the last purchase",
    ),
    Feature(
        "unique_products",
        "Distinct product ids over all purchase orders up to as_of.",
        "products",
        label="Different products bought",
    ),
    Feature(
        "cancellation_rate",
        "Cancelled value / gross purchase value up to as_of, capped at 1 (a cancellation may "
        "refer to an order from before the history starts); 1 with cancellations but no "
        "purchases, 0 with neither.",
        "ratio",
        label="Share of order value cancelled",
    ),
    Feature(
        "active_months",
        "Distinct calendar months (UTC) with at least one purchase up to as_of.",
        "months",
        label="Months with a purchase",
    ),
    Feature(
        "q4_spend_share",
        "Gross purchase value in October-December (UTC months of occurred_at) / gross purchase "
        "value, up to as_of, in [0, 1]; 0 without purchase value. How much of the customer's "
        "buying is Christmas-season buying.",
        "ratio",
        label="Share of spend in October-December",
    ),
    Feature(
        "orders_season_last_year",
        "Purchase orders in (as_of - 365d, as_of - 275d]: the 90 days after the clock, one year "
        "earlier. Whether the customer bought in the coming season last year (0 with less than a "
        "year of history before as_of).",
        "orders",
        depends_on_clock=True,
        label="Orders in the coming 90 days, one year earlier",
    ),
    Feature(
        "season_sin",
        "sin(2π·(m − 0.5)/12), m the calendar month (UTC, 1-12) of as_of: with season_cos, the "
        "time of year of the clock as a point on a circle (December next to January). The same "
        "for every customer at one clock: it lets a model trained on cutoffs across the year "
        "learn how the churn base rate moves with the season.",
        "ratio",
        depends_on_clock=True,
        label="Time of year (sine)",
    ),
    Feature(
        "season_cos",
        "cos(2π·(m − 0.5)/12), m the calendar month (UTC, 1-12) of as_of; see season_sin.",
        "ratio",
        depends_on_clock=True,
        label="Time of year (cosine)",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CLOCK_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.depends_on_clock)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}


def feature_table_markdown() -> str:
    """The registry as a Markdown table, for README/docs (generated, so docs cannot drift)."""
    lines = ["| feature | unit | moves with the clock | meaning |", "| --- | --- | --- | --- |"]
    for f in FEATURES:
        clock = "yes" if f.depends_on_clock else ""
        lines.append(f"| `{f.name}` | {f.unit} | {clock} | {f.meaning} |")
    return "\n".join(lines)
