"""An independent, plain-Python reading of the feature registry's definitions, one customer at a
time, for checking the vectorized polars implementation against."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = timedelta(days=1)


def days(later: datetime, earlier: datetime) -> float:
    return (later - earlier) / DAY


def reference_features(orders: Iterable[dict[str, Any]], as_of: datetime) -> dict[str, float]:
    """Features of one customer's orders (dicts with ORDER_SCHEMA keys) as of `as_of`."""
    past = [o for o in orders if o["occurred_at"] <= as_of]
    assert past, "the customer has no order at or before as_of"
    purchases = sorted((o for o in past if o["kind"] == "purchase"), key=lambda o: o["occurred_at"])
    cancellations = [o for o in past if o["kind"] == "cancellation"]
    events = sorted(o["occurred_at"] for o in past)

    if purchases:
        last, first = purchases[-1]["occurred_at"], purchases[0]["occurred_at"]
    else:
        last, first = events[-1], events[0]
    recency = days(as_of, last)
    monetary = math.fsum(o["total"] for o in past)
    gross = math.fsum(o["total"] for o in purchases)
    cancelled = -math.fsum(o["total"] for o in cancellations)

    def in_window(o: dict[str, Any], start_days: int, end_days: int = 0) -> bool:
        return as_of - start_days * DAY < o["occurred_at"] <= as_of - end_days * DAY

    features: dict[str, float] = {
        "recency_days": recency,
        "frequency": len(purchases),
        "monetary": monetary,
        "avg_order_value": monetary / len(purchases) if purchases else 0.0,
        "avg_items_per_order": (
            math.fsum(o["items"] for o in purchases) / len(purchases) if purchases else 0.0
        ),
        "tenure_days": days(as_of, first),
    }
    for n in (30, 90, 180, 365):
        features[f"orders_{n}d"] = sum(1 for o in purchases if in_window(o, n))
        features[f"spend_{n}d"] = math.fsum(o["total"] for o in past if in_window(o, n))
    recent = math.fsum(o["total"] for o in purchases if in_window(o, 90))
    before = math.fsum(o["total"] for o in purchases if in_window(o, 180, 90))
    features["spend_trend"] = (recent - before) / (recent + before) if recent + before else 0.0

    occasions = sorted({o["occurred_at"] for o in purchases})
    gaps = [days(b, a) for a, b in itertools.pairwise(occasions)]
    gap_mean = statistics.fmean(gaps) if gaps else 0.0
    features["gap_mean_days"] = gap_mean
    features["gap_std_days"] = statistics.pstdev(gaps) if gaps else 0.0
    features["days_past_expected_order"] = recency - gap_mean
    features["recency_gap_ratio"] = recency / max(gap_mean, 1.0)
    features["unique_products"] = len({p for o in purchases for p in o["products"]})
    if gross > 0:
        features["cancellation_rate"] = min(max(cancelled, 0.0) / gross, 1.0)
    else:
        features["cancellation_rate"] = 1.0 if cancelled > 0 else 0.0
    features["active_months"] = len(
        {(o["occurred_at"].year, o["occurred_at"].month) for o in purchases}
    )
    features["orders_season_last_year"] = sum(1 for o in purchases if in_window(o, 365, 275))
    q4 = math.fsum(o["total"] for o in purchases if o["occurred_at"].month >= 10)
    features["q4_spend_share"] = min(max(q4 / gross, 0.0), 1.0) if gross > 0 else 0.0
    angle = 2 * math.pi * (as_of.astimezone(UTC).month - 0.5) / 12
    features["season_sin"], features["season_cos"] = math.sin(angle), math.cos(angle)
    return {k: float(v) for k, v in features.items()}
