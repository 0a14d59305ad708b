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

__all__ = ["SKETCH_POINTS", "merged_cutoffs", "sketch"]

SKETCH_POINTS = 1025
# The size of the re-expanded sample when some sketch is a summary.
MERGE_SAMPLE = 200_000


def sketch(model_version: str, partitions: Iterable[int], ltv: np.ndarray) -> LtvSketch:
    values = np.sort(np.asarray(ltv, dtype=float))
    if len(values) > SKETCH_POINTS:
        values = np.quantile(values, np.linspace(0.0, 1.0, SKETCH_POINTS))
    return LtvSketch(
        model_version=model_version,
        partitions=sorted(partitions),
        count=len(ltv),
        values=values.tolist(),
    )


def merged_cutoffs(sketches: list[LtvSketch], partitions: int) -> TierCutoffs | None:
    """The tenant's cutoffs from sketches that cover every partition once (None otherwise:
    a replica has not announced its share yet, or two announce the same partition)."""
    covered = [p for s in sketches for p in s.partitions]
    if sorted(covered) != list(range(partitions)):
        return None
    if all(len(s.values) == s.count for s in sketches):
        return tier_cutoffs(np.concatenate([np.asarray(s.values) for s in sketches]))
    total = sum(s.count for s in sketches)
    samples = []
    for s in sketches:
        if not s.count:
            continue
        points = max(2, round(MERGE_SAMPLE * s.count / total))
        ranks = np.linspace(0.0, 1.0, len(s.values))
        samples.append(np.interp(np.linspace(0.0, 1.0, points), ranks, s.values))
    return tier_cutoffs(np.concatenate(samples))
