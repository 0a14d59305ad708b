"""Every customer's LTV kept sorted, so a patch recuts the value tiers without a pass over all.

The tier cutoffs are quantiles of the population's LTVs (`scoring.tier_cutoffs`). `np.quantile`
over 380k customers costs ~6 ms and the recut (a search per customer) ~3 ms, per patch. Kept
sorted (with each value's position), a patch moves its customers' values (a memmove of the two
arrays: ~0.1 ms at 380k), the quantiles are read at their indices, and only the customers whose
LTV lies between an old and a new cutoff change tier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retention_scoring.scoring import TIER_QUANTILES, TierCutoffs

__all__ = ["LtvOrder", "sorted_quantiles"]


def sorted_quantiles(ordered: np.ndarray) -> TierCutoffs:
    """`tier_cutoffs` of an ascending array, bit for bit as `np.quantile`'s "linear" method
    (index (n - 1)·q, and its two-sided interpolation) computes them, read at three indices."""
    n = len(ordered)
    if n == 0:
        return (0.0, 0.0, 0.0)
    virtual = (n - 1) * np.asarray(TIER_QUANTILES)
    previous = np.floor(virtual)
    gamma = virtual - previous
    below = previous.astype(np.intp)
    a = ordered[below]
    b = ordered[np.minimum(below + 1, n - 1)]
    diff = b - a
    value = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    low, high, vip = value.tolist()
    return (float(low), float(high), float(vip))


@dataclass(frozen=True)
class LtvOrder:
    """LTVs ascending (`values`) and the population position of each (`positions`)."""

    values: np.ndarray
    positions: np.ndarray

    @classmethod
    def of(cls, ltv: np.ndarray) -> LtvOrder:
        by = np.argsort(ltv, kind="stable")
        return cls(ltv[by], by.astype(np.int64))

    def moved(self, positions: np.ndarray, old: np.ndarray, new: np.ndarray) -> LtvOrder:
        """The order after `positions` (those below the current size had `old` LTVs; the rest are
        appended) take `new` LTVs. A new order: this one stays valid for its population."""
        existing = positions < len(self.values)
        drop = [
            self._index(int(p), float(v)) for p, v in zip(positions[existing], old, strict=True)
        ]
        values = np.delete(self.values, drop)
        at = np.delete(self.positions, drop)
        sort = np.argsort(new, kind="stable")
        where = np.searchsorted(values, new[sort], side="right")
        return LtvOrder(np.insert(values, where, new[sort]), np.insert(at, where, positions[sort]))

    def _index(self, position: int, value: float) -> int:
        first = int(np.searchsorted(self.values, value, side="left"))
        last = int(np.searchsorted(self.values, value, side="right"))
        found = np.flatnonzero(self.positions[first:last] == position)
        assert len(found) == 1, (position, value)
        return first + int(found[0])

    def cutoffs(self) -> TierCutoffs:
        return sorted_quantiles(self.values)

    def crossing(self, old: TierCutoffs, new: TierCutoffs) -> tuple[np.ndarray, np.ndarray]:
        """Positions whose tier differs between cutoffs `old` and `new`, and their LTVs: those
        at or above one of a cutoff's two values and below the other."""
        spans = []
        for was, now in zip(old, new, strict=True):
            if was != now:
                lo, hi = sorted((was, now))
                first, last = np.searchsorted(self.values, (lo, hi), side="left").tolist()
                spans.append(np.arange(first, last))
        if not spans:
            return np.zeros(0, np.int64), np.zeros(0)
        ranks = np.unique(np.concatenate(spans))
        return self.positions[ranks], self.values[ranks]
