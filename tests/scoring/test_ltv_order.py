"""The sorted LTVs a patch keeps: the same cutoffs as `np.quantile` over every customer, bit for
bit, and the same tiers as a recut of everyone."""

from __future__ import annotations

import numpy as np
import pytest

from retention_scoring.ltv_order import LtvOrder, sorted_quantiles
from retention_scoring.scoring import tier_cutoffs, value_tiers


def _ltvs(rng: np.random.Generator, size: int) -> np.ndarray:
    values = rng.lognormal(3.0, 1.5, size)
    values[rng.random(size) < 0.3] = 0.0  # ties, as one-order customers give
    return values


@pytest.mark.parametrize("size", [1, 2, 3, 7, 20, 1000, 5001])
def test_cutoffs_read_from_the_sorted_ltvs_equal_a_quantile_over_everyone(size: int) -> None:
    rng = np.random.default_rng(size)
    for _ in range(20):
        ltv = _ltvs(rng, size)
        assert sorted_quantiles(np.sort(ltv)) == tier_cutoffs(ltv)
    assert sorted_quantiles(np.zeros(0)) == tier_cutoffs(np.zeros(0))


def test_moving_some_ltvs_keeps_the_order_and_only_crossing_customers_change_tier() -> None:
    rng = np.random.default_rng(3)
    ltv = _ltvs(rng, 2000)
    order = LtvOrder.of(ltv)
    cutoffs = tier_cutoffs(ltv)
    tiers = value_tiers(ltv, cutoffs)
    for step in range(40):
        changed = rng.choice(len(ltv), 15, replace=False)
        new_rows = np.arange(len(ltv), len(ltv) + step % 5)
        rows = np.concatenate([changed, new_rows])
        fresh = _ltvs(rng, len(rows)) * (50.0 if step % 7 == 0 else 1.0)
        old = ltv[changed]
        ltv = np.concatenate([ltv, np.zeros(len(new_rows))])
        ltv[rows] = fresh
        order = order.moved(rows, old, fresh)
        assert np.array_equal(order.values, np.sort(ltv))
        assert np.array_equal(ltv[order.positions], order.values)
        assert sorted(order.positions.tolist()) == list(range(len(ltv)))
        new_cutoffs = order.cutoffs()
        assert new_cutoffs == tier_cutoffs(ltv)
        # The patched rows take tiers at the old cutoffs first, then the crossing ones move.
        tiers = np.concatenate([tiers, np.empty(len(new_rows), dtype=object)])
        tiers[rows] = value_tiers(fresh, cutoffs)
        at, values = order.crossing(cutoffs, new_cutoffs)
        assert np.array_equal(ltv[at], values)
        tiers[at] = value_tiers(values, new_cutoffs)
        assert np.array_equal(tiers, value_tiers(ltv, new_cutoffs))
        cutoffs = new_cutoffs
