"""A segment table over customers split in shares (sharded replicas), from each share's own
table (no I/O): counts and sums added, the revenue shares and mean churn recomputed from them —
the table `segment_table` makes over all of them, up to the order floats were added in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SegmentShare", "merge_segments"]


@dataclass(frozen=True)
class SegmentShare:
    rows: list[dict[str, Any]]  # `segment_table`'s rows over the share's customers
    customers: int
    revenue: float  # the share's net spend to date (negatives as 0): its revenue shares are of it


def merge_segments(
    shares: list[SegmentShare], order: list[str]
) -> tuple[list[dict[str, Any]], int]:
    """(The table over every share, the customers in all.) `order` is the model's segments."""
    sums: dict[str, dict[str, Any]] = {}
    total_revenue = sum(share.revenue for share in shares)
    for share in shares:
        for row in share.rows:
            into = sums.setdefault(
                row["segment"],
                {
                    "customers": 0,
                    "revenue": 0.0,
                    "churn": 0.0,
                    "at_risk": 0.0,
                    "ltv": 0.0,
                    "action": row["action"],
                },
            )
            into["customers"] += row["customers"]
            into["revenue"] += row["revenue_share"] * (share.revenue or 1.0)
            into["churn"] += (row["mean_churn_probability"] or 0.0) * row["customers"]
            into["at_risk"] += row["revenue_at_risk"]
            into["ltv"] += row["predicted_ltv"]
    merged = [
        {
            "segment": segment,
            "customers": s["customers"],
            "revenue_share": s["revenue"] / (total_revenue or 1.0),
            "mean_churn_probability": s["churn"] / s["customers"] if s["customers"] else None,
            "revenue_at_risk": s["at_risk"],
            "predicted_ltv": s["ltv"],
            "action": s["action"],
        }
        for segment, s in sums.items()
    ]
    # `segment_table`'s order: largest revenue at risk first, ties in the model's order.
    merged.sort(key=lambda r: (-r["revenue_at_risk"], order.index(r["segment"])))
    return merged, sum(share.customers for share in shares)
