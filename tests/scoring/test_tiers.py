"""Value-tier cutoffs merged over sharded replicas (`retention_scoring.tiers`): exact while
every share is small enough to send whole, within a fraction of a percent of the customers'
tiers when the shares are summarized."""

from __future__ import annotations

import numpy as np

from retention_scoring.scoring import tier_cutoffs, value_tiers
from retention_scoring.tiers import SKETCH_POINTS, merged_cutoffs, sketch


def _shares(ltv: np.ndarray, partitions: int, rng: np.random.Generator) -> list[np.ndarray]:
    owner = rng.integers(0, partitions, len(ltv))
    return [ltv[owner == p] for p in range(partitions)]


def test_small_shares_merge_to_exactly_the_whole_tenants_cutoffs() -> None:
    rng = np.random.default_rng(1)
    ltv = np.round(rng.lognormal(5.0, 1.5, 2_000), 2)
    shares = _shares(ltv, 6, rng)
    assert all(len(share) <= SKETCH_POINTS for share in shares)
    sketches = [sketch("v1", [p], share) for p, share in enumerate(shares)]
    assert merged_cutoffs(sketches, 6) == tier_cutoffs(ltv)


def test_summarized_shares_put_almost_every_customer_in_the_same_tier() -> None:
    rng = np.random.default_rng(2)
    ltv = rng.lognormal(5.0, 1.5, 300_000)
    shares = _shares(ltv, 4, rng)
    sketches = [sketch("v1", [p], share) for p, share in enumerate(shares)]
    merged, exact = merged_cutoffs(sketches, 4), tier_cutoffs(ltv)
    assert merged is not None
    relative = np.abs(np.asarray(merged) / np.asarray(exact) - 1.0)
    moved = np.mean(value_tiers(ltv, merged) != value_tiers(ltv, exact))
    print(f"cutoffs off by {relative.max():.2e} (relative), tiers moved {moved:.2e}")
    assert relative.max() < 1e-3
    assert moved < 1e-3


def test_no_cutoffs_until_the_shares_cover_every_partition_once() -> None:
    share = np.arange(10.0)
    assert merged_cutoffs([sketch("v1", [0, 1], share)], 3) is None
    overlapping = [sketch("v1", [0, 1], share), sketch("v1", [1, 2], share)]
    assert merged_cutoffs(overlapping, 3) is None
