"""How well churn probabilities mean what they say: the reliability table and the expected
calibration error (ECE) over ten equal-width probability bins.

Bins are ``[0, 0.1), [0.1, 0.2), …, [0.9, 1]``. Per bin: the customers in it, their mean
predicted probability and the share who churned. ECE is the customers-weighted mean gap,
``Σ_b (n_b / n) · |mean predicted_b − observed rate_b|`` (Naeini, Cooper & Hauskrecht 2015);
0 is perfectly calibrated. Empty bins weigh nothing and have no mean (null in the report).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["CALIBRATION_BINS", "expected_calibration_error", "reliability_table"]

CALIBRATION_BINS = 10


def reliability_table(
    y_true: ArrayLike, y_prob: ArrayLike, bins: int = CALIBRATION_BINS
) -> list[dict[str, float | int | None]]:
    """One dict per bin: ``lower``, ``upper``, ``count``, ``mean_predicted``, ``observed_rate``."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    if y.shape != p.shape or y.ndim != 1 or y.size == 0:
        raise ValueError("y_true and y_prob must be non-empty 1-D arrays of one length")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be finite and in [0, 1]")
    index = np.minimum((p * bins).astype(int), bins - 1)
    table: list[dict[str, float | int | None]] = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        table.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": count,
                "mean_predicted": float(p[inside].mean()) if count else None,
                "observed_rate": float(y[inside].mean()) if count else None,
            }
        )
    return table


def expected_calibration_error(table: list[dict[str, float | int | None]]) -> float:
    """ECE of a :func:`reliability_table`."""
    total = sum(int(row["count"] or 0) for row in table)
    gaps = [
        int(row["count"] or 0) * abs(float(row["mean_predicted"]) - float(row["observed_rate"]))
        for row in table
        if row["count"]
    ]
    return float(sum(gaps) / total)
