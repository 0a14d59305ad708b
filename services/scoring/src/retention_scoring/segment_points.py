"""Customers as points for an RFM chart: recency, frequency and spend with their segment (no I/O).

A large tenant has too many customers for one chart, so a sample is drawn — deterministically:
the customers with the smallest hash of their id. The same customers come back on every call
while the population holds them (the chart does not jump on reload), and a larger sample
contains every smaller one. The hash is polars' own, stable for a given polars version.

Customers split in shares (sharded replicas) are sampled alike: each share's own sample holds
every customer of the tenant-wide sample that is in the share (the smallest hashes of the whole
are the smallest of their share), so the sample of the shares' samples together is exactly the
tenant-wide one (`merged_points`).
"""

from __future__ import annotations

import polars as pl

__all__ = ["POINTS_SCHEMA", "merged_points", "sample_points"]

POINTS_SCHEMA = pl.Schema(
    {
        "customer_id": pl.String(),
        "segment": pl.String(),
        "recency_days": pl.Float64(),
        "frequency": pl.Float64(),
        "monetary": pl.Float64(),
    }
)
# Any fixed seed: the sample only needs to be the same from one call to the next.
_SEED = 0x5E6


def sample_points(scores: pl.DataFrame, features: pl.DataFrame, limit: int) -> pl.DataFrame:
    """At most `limit` customers of a scored population (`scores` and `features` row-aligned,
    at the same clock) with `POINTS_SCHEMA`, ordered by customer id."""
    points = pl.concat(
        [
            scores.select("customer_id", "segment"),
            features.select(
                pl.col("recency_days", "frequency", "monetary").cast(pl.Float64),
            ),
        ],
        how="horizontal",
    )
    return _sampled(points, limit)


def merged_points(samples: list[pl.DataFrame], limit: int) -> pl.DataFrame:
    """The sample of `limit` over the customers of disjoint shares, from each share's sample of
    `limit` (`POINTS_SCHEMA` frames)."""
    return _sampled(pl.concat([s.cast(POINTS_SCHEMA) for s in samples]), limit)  # type: ignore[arg-type]


def _sampled(points: pl.DataFrame, limit: int) -> pl.DataFrame:
    if points.height > limit:
        key = pl.col("customer_id").hash(_SEED)
        # Ties (a 64-bit collision) are broken by the id itself, so the sample stays a function
        # of the ids alone.
        points = points.sort(key, "customer_id").head(limit)
    return points.sort("customer_id")
