"""A segment's profile (no I/O): each feature's quartiles over the segment's customers, so one
customer's values can be read against the customers like them ("43 days since the last purchase;
the segment's median is 12").

The quantiles interpolate linearly between the two nearest values (numpy's default `linear`
method): the median of four customers is the mean of the middle two.

Customers split in shares (sharded replicas): each share summarizes its members' values of
every feature (`profile_share`: every value when at most `SKETCH_POINTS`, else its quantiles at
that many ranks, as value tiers do: `tiers.py`) and the quartiles are taken over the shares
merged (`merged_profile`). Exact when every share is whole; else a quartile is one whose rank
among the members is within 1/1024 (+ 1/200,000) of its own (tests/scoring/test_gathered.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from retention_scoring.tiers import expanded, summarized
from retention_shared.features import FEATURE_NAMES

__all__ = [
    "QUARTILES",
    "FeatureSpread",
    "ProfileShare",
    "merged_profile",
    "profile_share",
    "segment_profile",
]

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


@dataclass(frozen=True)
class ProfileShare:
    """A share's members of a segment: how many, and each feature's values summarized."""

    customers: int
    counts: dict[str, int]  # feature → the members' values (nulls left out)
    values: dict[str, list[float]]  # feature → those values `summarized`

    def to_json(self) -> dict[str, object]:
        return {"customers": self.customers, "counts": self.counts, "values": self.values}

    @classmethod
    def from_json(cls, data: dict) -> ProfileShare:
        return cls(int(data["customers"]), dict(data["counts"]), dict(data["values"]))


def profile_share(features: pl.DataFrame, segments: pl.Series, segment: str) -> ProfileShare:
    members = features.filter(segments == segment)
    columns = {
        name: members[name].drop_nulls().cast(pl.Float64).to_numpy() for name in FEATURE_NAMES
    }
    return ProfileShare(
        members.height,
        {name: len(values) for name, values in columns.items()},
        {name: summarized(values).tolist() for name, values in columns.items()},
    )


def merged_profile(shares: list[ProfileShare]) -> tuple[int, list[FeatureSpread]]:
    """`segment_profile` over the members of every share."""
    spreads = []
    for name in FEATURE_NAMES:
        parts = [(s.counts[name], np.asarray(s.values[name], dtype=float)) for s in shares]
        values = pl.Series(name, expanded(parts), dtype=pl.Float64)
        quartiles = [values.quantile(q, interpolation="linear") for q in QUARTILES.values()]
        spreads.append(FeatureSpread(name, *quartiles))
    return sum(s.customers for s in shares), spreads
