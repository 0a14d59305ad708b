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

A bundle holds the scaler, the centroids and the names (JSON); assigning a customer is the
nearest centroid. Fitting and naming are the trainer's (`retention_trainer.fitting.segmenter`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

__all__ = ["PERSONAS", "SEGMENT_FEATURES", "Segmenter", "log_rfm"]

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
        nearest: NDArray[np.int64] = distances.argmin(axis=1)
        return nearest

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
    def from_dict(cls, data: dict[str, Any]) -> Segmenter:
        return cls(
            np.asarray(data["means"], dtype=float),
            np.asarray(data["scales"], dtype=float),
            np.asarray(data["centroids"], dtype=float),
            tuple(data["names"]),
        )
