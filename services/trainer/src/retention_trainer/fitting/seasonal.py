"""The LTV model's seasonal level: how far the model, calibrated on the validation cutoff, misses
the total spend of the same season one year before the cutoff it scores.

The validation cutoff sits one horizon before the test cutoff, so with a 180-day horizon its
label window is the opposite half of the year: on UCI II the stack learns the level of
December–June and then scores June–December, whose customers spend 2.1 times what it predicts.
BG/NBD and the trees have no notion of season. When the training cutoffs hold one about a year
before the scoring cutoff (same season, labels complete long before), the ratio
``Σ actual / Σ point`` there becomes the model's ``level``, a factor on the point and a shift of
the interval. With less than a year of labelled history there is no such cutoff and the level
stays 1. Only labelled history before the scoring cutoff is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import polars as pl
from numpy.typing import NDArray

from retention_bundle.models.ltv import LTVModel
from retention_trainer.fitting.purchase import fit_purchase_model

__all__ = ["LEVEL_BOUNDS", "SEASON_DAYS", "seasonal_cutoff", "with_seasonal_level"]

SEASON_DAYS = 365
# A level outside these bounds says more about a small or odd cutoff than about a season.
LEVEL_BOUNDS = (0.25, 4.0)


def seasonal_cutoff(
    scoring_cutoff: date, training_cutoffs: Sequence[date], tolerance_days: int
) -> date | None:
    """The training cutoff nearest to one year before ``scoring_cutoff``, if within
    ``tolerance_days`` of it (half the cutoff spacing: the grid's nearest point)."""
    target = scoring_cutoff - timedelta(days=SEASON_DAYS)
    if not training_cutoffs:
        return None
    nearest = min(training_cutoffs, key=lambda c: abs((c - target).days))
    return nearest if abs((nearest - target).days) <= tolerance_days else None


def with_seasonal_level(
    model: LTVModel, at_season: pl.DataFrame | None, X_season: NDArray[np.float64] | None
) -> tuple[LTVModel, float]:
    """``model`` with its level set from the examples at the seasonal cutoff (features and
    ``future_spend``), and that level; level 1 when there is no such cutoff or it says nothing."""
    level = 1.0
    if at_season is not None and X_season is not None and at_season.height > 0:
        purchase = fit_purchase_model(at_season)
        unleveled = dataclasses.replace(model, level=1.0)
        predicted = float(
            unleveled.point_spend(
                X_season, purchase.expected_spend(at_season, model.horizon_days)
            ).sum()
        )
        actual = float(at_season["future_spend"].clip(lower_bound=0).sum())
        if predicted > 0 and actual > 0:
            level = float(np.clip(actual / predicted, *LEVEL_BOUNDS))
    return dataclasses.replace(model, level=level), level
