"""Customer segments: k-means on standardized log-RFM, named personas with a recommended action.

- Inputs per customer: ``log1p(recency_days)``, ``log1p(frequency)``, ``log1p(max(monetary, 0))``,
  standardized with the fitting population's means and scales.
- ``k`` is chosen by the silhouette score over 3–8 (on a fixed random sample of at most 4,000
  customers, for speed); k-means uses 10 seeded restarts.
- **Naming.** Each persona has a prototype position in standardized space (recency reversed, so
  "+1" means recent). Centroids are matched one-to-one to the prototypes by the Hungarian method
  (``scipy.optimize.linear_sum_assignment``) on Euclidean distance; only matched personas apply.
- **Stable across retrains.** Given the previous segmenter, new centroids are first matched to
  the old ones (in unstandardized log-RFM space, since the scaler moves too) and inherit their
  names; any extra centroid is named from the unused prototypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

__all__ = ["PERSONAS", "SEGMENT_FEATURES", "Segmenter", "fit_segmenter", "log_rfm"]

SEGMENT_FEATURES = ("recency_days", "frequency", "monetary")
# name: ((recentness, frequency, monetary) prototype in standardized units, recommended action)
PERSONAS: dict[str, tuple[tuple[float, float, float], str]] = {
    "Champions": ((1.0, 1.6, 1.6), "Reward them: early access, loyalty perks, ask for referrals."),
    "Loyal": ((0.6, 0.9, 0.9), "Upsell higher-value products; invite to the loyalty programme."),
    "Potential loyalists": (
        (0.8, 0.1, 0.1),
        "Offer membership or a second-purchase incentive to build the habit.",
    ),
    "New": ((1.2, -0.9, -0.7), "Onboard: welcome series, product guidance, a first-repeat offer."),
    "At risk": ((-0.5, 0.5, 0.5), "Reach out personally with a tailored win-back offer now."),
    "Can't lose": ((-1.0, 1.3, 1.3), "Win them back at any reasonable cost: call, premium offer."),
    "Hibernating": (
        (-0.6, -0.5, -0.5),
        "Reactivate with a low-cost reminder of relevant products.",
    ),
    "Lost": ((-1.6, -0.9, -0.9), "Low priority: include only in cheap broad campaigns."),
}
SILHOUETTE_SAMPLE = 4000
K_RANGE = range(3, 9)


def log_rfm(features: pl.DataFrame) -> NDArray[np.float64]:
    """The segmenter's inputs per row of a features frame."""
    recency = features["recency_days"].to_numpy().astype(float)
    frequency = features["frequency"].to_numpy().astype(float)
    monetary = features["monetary"].to_numpy().astype(float)
    return np.column_stack(
        [
            np.log1p(np.clip(recency, 0, None)),
            np.log1p(np.clip(frequency, 0, None)),
            np.log1p(np.clip(monetary, 0, None)),
        ]
    )


@dataclass(frozen=True, slots=True)
class Segmenter:
    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    centroids: NDArray[np.float64]  # standardized units, one row per segment
    names: tuple[str, ...]

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(PERSONAS[name][1] for name in self.names)

    def raw_centroids(self) -> NDArray[np.float64]:
        return self.centroids * self.scales + self.means

    def assign(self, features: pl.DataFrame) -> NDArray[np.int64]:
        """Index of the nearest centroid per row."""
        z = (log_rfm(features) - self.means) / self.scales
        distances = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def segment_names(self, features: pl.DataFrame) -> list[str]:
        return [self.names[i] for i in self.assign(features)]

    def as_dict(self) -> dict[str, object]:
        return {
            "inputs": [f"log1p({name})" for name in SEGMENT_FEATURES],
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "centroids": self.centroids.tolist(),
            "names": list(self.names),
            "actions": list(self.actions),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Segmenter:
        return cls(
            np.asarray(data["means"], dtype=float),
            np.asarray(data["scales"], dtype=float),
            np.asarray(data["centroids"], dtype=float),
            tuple(data["names"]),
        )


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
