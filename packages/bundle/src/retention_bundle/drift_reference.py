"""Reference feature distributions, for drift checks (PSI) by the scoring service: the trainer
computes them on its test customers (`reference_distributions`), scoring bins the live population
the same way (`bin_proportions`).

Per feature: the interior bin edges are the distinct deciles of the reference population (the
test cutoff's customers), so bins are ``(-inf, e1], (e1, e2], …, (ek, +inf)`` and
``proportions`` has ``len(edges) + 1`` entries that sum to 1. Plain lists: JSON as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

__all__ = ["bin_proportions", "reference_distributions"]

QUANTILES = np.linspace(0.1, 0.9, 9)


def bin_proportions(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Share of ``values`` in each bin of ``edges`` (right-closed, open-ended outer bins)."""
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=float), values, side="left"),
        minlength=len(edges) + 1,
    )
    shares: list[float] = (counts / max(len(values), 1)).tolist()
    return shares


def reference_distributions(
    features: pl.DataFrame, names: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """Per feature of ``names``: its decile edges in ``features`` and the share in each bin."""
    reference = {}
    for name in names:
        values = features[name].to_numpy().astype(float)
        edges = np.unique(np.quantile(values, QUANTILES)).tolist() if len(values) else []
        reference[name] = {"edges": edges, "proportions": bin_proportions(values, edges)}
    return reference
