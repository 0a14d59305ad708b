"""Fitting the segmenter (`retention_bundle.models.segmenter`): k-means on standardized log-RFM
with ``k`` chosen by silhouette, centroids named after the personas, or after the previous
segmenter's centroids so names stay stable across retrains (the model's docstring has the
method)."""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from retention_bundle.models.segmenter import PERSONAS, Segmenter, log_rfm

__all__ = ["K_RANGE", "SILHOUETTE_SAMPLE", "fit_segmenter"]

SILHOUETTE_SAMPLE = 4000
K_RANGE = range(3, 9)


def _prototype_names(centroids: NDArray, available: list[str]) -> list[str]:
    prototypes = np.array([PERSONAS[name][0] for name in available])
    position = centroids * np.array([-1.0, 1.0, 1.0])  # recency reversed: +1 is recent
    cost = ((position[:, None, :] - prototypes[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    names = [""] * len(centroids)
    for row, col in zip(rows, cols, strict=True):
        names[row] = available[col]
    return names


def _inherited_names(raw: NDArray, previous: Segmenter) -> list[str]:
    old = previous.raw_centroids()
    cost = ((raw[:, None, :] - old[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    names = [""] * len(raw)
    for row, col in zip(rows, cols, strict=True):
        names[row] = previous.names[col]
    return names


def fit_segmenter(
    features: pl.DataFrame, previous: Segmenter | None = None, seed: int = 0
) -> Segmenter:
    """Fit on one cutoff's features (customers with a purchase); see the module docstring."""
    data = log_rfm(features)
    means = data.mean(axis=0)
    scales = data.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    z = (data - means) / scales
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(z), size=min(len(z), SILHOUETTE_SAMPLE), replace=False)
    best: tuple[float, KMeans] | None = None
    for k in K_RANGE:
        if k >= len(z):
            break
        fitted = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
        score = silhouette_score(z[sample], fitted.labels_[sample])
        if best is None or score > best[0]:
            best = (score, fitted)
    if best is None:
        raise ValueError(f"segmenting needs more than {min(K_RANGE)} customers, got {len(z)}")
    centroids = best[1].cluster_centers_
    if previous is None:
        names = _prototype_names(centroids, list(PERSONAS))
    else:
        names = _inherited_names(centroids * scales + means, previous)
        missing = [i for i, name in enumerate(names) if not name]
        if missing:
            unused = [name for name in PERSONAS if name not in names]
            for i, name in zip(missing, _prototype_names(centroids[missing], unused), strict=True):
                names[i] = name
    # A stable order: by name in PERSONAS order.
    order = sorted(range(len(names)), key=lambda i: list(PERSONAS).index(names[i]))
    return Segmenter(means, scales, centroids[order], tuple(names[i] for i in order))
