"""Value tiers over a sharded tenant: each replica's predicted LTVs, summarized, merged into the
tenant-wide cutoffs one replica holding everyone would cut (no I/O).

A replica announces, per tenant, the predicted LTVs of the partitions it owns: every value when
there are at most `SKETCH_POINTS` (the merge is then exact: the same quantiles as over the whole
population), else the quantiles at `SKETCH_POINTS` evenly spaced ranks. Merging re-expands each
sketch to a sample proportional to its count; the error is within a fraction of a rank step of
the largest shard (measured in docs/scoring.md, "Sharding").
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from retention_scoring.scoring import TierCutoffs, tier_cutoffs
from retention_shared.events import LtvSketch

__all__ = ["SKETCH_POINTS", "expanded", "merged_cutoffs", "sketch", "summarized"]

SKETCH_POINTS = 1025
# The size of the re-expanded sample when some sketch is a summary.
MERGE_SAMPLE = 200_000


def summarized(values: np.ndarray) -> np.ndarray:
    """Every value sorted when at most `SKETCH_POINTS`, else the quantiles at `SKETCH_POINTS`
    evenly spaced ranks (the first and last are the minimum and maximum)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if len(ordered) > SKETCH_POINTS:
        return np.quantile(ordered, np.linspace(0.0, 1.0, SKETCH_POINTS))
    return ordered


def expanded(parts: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Values of shares, each `(count, summarized(its values))`: all of them when every part is
    whole (exact), else a `MERGE_SAMPLE`-value sample, each part re-expanded to its share of it
    by interpolating between its quantiles."""
    if all(len(values) == count for count, values in parts):
        return np.concatenate([np.asarray(v, dtype=float) for _, v in parts] or [np.empty(0)])
    total = sum(count for count, _ in parts)
    samples = []
    for count, values in parts:
        if not count:
            continue
        points = max(2, round(MERGE_SAMPLE * count / total))
        ranks = np.linspace(0.0, 1.0, len(values))
        samples.append(np.interp(np.linspace(0.0, 1.0, points), ranks, values))
    return np.concatenate(samples)


def sketch(model_version: str, partitions: Iterable[int], ltv: np.ndarray) -> LtvSketch:
    return LtvSketch(
        model_version=model_version,
        partitions=sorted(partitions),
        count=len(ltv),
        values=summarized(ltv).tolist(),
    )


def merged_cutoffs(sketches: list[LtvSketch], partitions: int) -> TierCutoffs | None:
    """The tenant's cutoffs from sketches that cover every partition once (None otherwise:
    a replica has not announced its share yet, or two announce the same partition)."""
    covered = [p for s in sketches for p in s.partitions]
    if sorted(covered) != list(range(partitions)):
        return None
    return tier_cutoffs(expanded([(s.count, np.asarray(s.values, dtype=float)) for s in sketches]))
