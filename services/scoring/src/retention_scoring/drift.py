"""Population stability index of live features against a bundle's reference distributions.

For a feature with reference bins (interior edges from the reference deciles, proportions
`e_i`, see `retention_bundle.drift_reference`), the live population's proportions `a_i` in the
same bins give

    PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)

with both proportions floored at 1e-4 so an empty bin counts as very unlikely rather than
infinite. Rules of thumb: < 0.1 stable, 0.1–0.2 moderate shift, > 0.2 (the default
`RETENTION_DRIFT_PSI_THRESHOLD`) a shift worth retraining for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from retention_bundle.drift_reference import bin_proportions

__all__ = ["PROPORTION_FLOOR", "feature_psi", "psi"]

PROPORTION_FLOOR = 1e-4

Reference = Mapping[str, Mapping[str, Sequence[float]]]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    e = np.clip(np.asarray(expected, dtype=float), PROPORTION_FLOOR, None)
    a = np.clip(np.asarray(actual, dtype=float), PROPORTION_FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(reference: Reference, features: pl.DataFrame) -> dict[str, float]:
    """PSI per reference feature present in `features` (an empty population has none)."""
    if features.is_empty():
        return {}
    found = {}
    for name, bins in reference.items():
        if name not in features.columns:
            continue
        values = features[name].to_numpy().astype(float)
        found[name] = psi(bins["proportions"], bin_proportions(values, bins["edges"]))
    return found
