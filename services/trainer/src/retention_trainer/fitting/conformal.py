"""Split-conformal offsets for a two-sided interval (Romano, Patterson & Candès 2019, "Conformalized
Quantile Regression", with one offset per side).

Given a base interval ``[base_low, base_high]`` and held-out targets ``y`` (all on the same
scale, here ``log1p`` spend), the offsets make ``[base_low + offset_low, base_high +
offset_high]`` miss below for a share ``(1 − coverage)/2`` of the held-out rows and above for as
many, with the finite-sample rank ``⌈(n + 1)(1 − α)⌉`` of split conformal, so the guarantee holds
for new rows exchangeable with the held-out ones. Offsets may be negative: a base that is too
wide is narrowed. Only numbers come out; the model stores them.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["conformal_offsets"]


def _upper_rank_quantile(scores: np.ndarray, miss: float) -> float:
    """The ``⌈(n + 1)(1 − miss)⌉``-th smallest score (the largest when that rank exceeds n)."""
    n = scores.size
    rank = min(n, math.ceil((n + 1) * (1.0 - miss)))
    return float(np.partition(scores, rank - 1)[rank - 1])


def conformal_offsets(
    base_low: ArrayLike, base_high: ArrayLike, y: ArrayLike, coverage: float
) -> tuple[float, float]:
    """``(offset_low, offset_high)`` such that each side misses a share ``(1 − coverage)/2`` of
    the held-out ``y``."""
    low, high, target = (np.asarray(v, dtype=float).ravel() for v in (base_low, base_high, y))
    if not (low.size == high.size == target.size) or target.size == 0:
        raise ValueError(
            f"conformal calibration needs equal, non-empty arrays; got {low.size}, "
            f"{high.size} and {target.size} rows"
        )
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1); got {coverage}")
    if not (np.isfinite(low).all() and np.isfinite(high).all() and np.isfinite(target).all()):
        raise ValueError("conformal calibration needs finite bases and targets")
    miss = (1.0 - coverage) / 2.0
    # A row is inside on the low side when y >= base_low + offset_low.
    offset_low = -_upper_rank_quantile(low - target, miss)
    offset_high = _upper_rank_quantile(target - high, miss)
    return offset_low, offset_high
