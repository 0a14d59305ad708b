"""A segment's profile (no I/O): each feature's quartiles over the segment's customers, so one
customer's values can be read against the customers like them ("43 days since the last purchase;
the segment's median is 12").

The quantiles interpolate linearly between the two nearest values (numpy's default `linear`
method): the median of four customers is the mean of the middle two.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from retention_shared.features import FEATURE_NAMES

__all__ = ["QUARTILES", "FeatureSpread", "segment_profile"]

QUARTILES = {"p25": 0.25, "median": 0.5, "p75": 0.75}


@dataclass(frozen=True)
class FeatureSpread:
    feature: str
    # None when the segment has no customers.
    p25: float | None
    median: float | None
    p75: float | None


def segment_profile(
    features: pl.DataFrame, segments: pl.Series, segment: str
) -> tuple[int, list[FeatureSpread]]:
    """(customers in `segment`, the quartiles of every feature over them, in `FEATURE_NAMES`
    order). `features` holds `FEATURE_NAMES` columns, one row per customer; `segments` is each
    row's segment, aligned with it."""
    members = features.filter(segments == segment)
    quartiles = members.select(
        pl.col(name).quantile(q, interpolation="linear").alias(f"{name}:{key}")
        for name in FEATURE_NAMES
        for key, q in QUARTILES.items()
    ).row(0, named=True)
    spreads = [
        FeatureSpread(name, *(quartiles[f"{name}:{key}"] for key in QUARTILES))
        for name in FEATURE_NAMES
    ]
    return members.height, spreads
