"""The churn model's seasonal shift: the churn analogue of LTV's seasonal level
(`retention_trainer.fitting.seasonal`).

The stacked Platt calibration is fitted on the validation cutoff, one horizon plus the test gap
before the test cutoff, so it learns that season's churn level (UCI II: summer, churn 0.68) and
scores another (autumn before Christmas, churn 0.57). At the training cutoff about a year before
the scoring cutoff (same season, labels complete long before; `seasonal_cutoff` chooses it), the
shift ``s`` of the calibrated log-odds that makes the mean predicted probability equal the
observed churn rate there is solved for and added to the model's intercept. A constant on the
log-odds: ranking, ROC-AUC and the validation customers the threshold flags are unchanged. 0
without such a cutoff; bounded, since a large shift says more about an odd cutoff than a season.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq
from scipy.special import expit, logit

from retention_bundle.models.churn import ChurnModel

__all__ = ["SHIFT_BOUNDS", "matching_shift", "with_seasonal_shift"]

# ±1 on the log-odds moves a rate of 0.5 to 0.27 or 0.73: more than any season seen in the data.
SHIFT_BOUNDS = (-1.0, 1.0)


def matching_shift(logit: NDArray[np.float64], rate: float) -> float:
    """The shift ``s`` with ``mean(σ(logit + s)) == rate``, clipped to `SHIFT_BOUNDS`."""
    low, high = SHIFT_BOUNDS

    def gap(s: float) -> float:
        return float(expit(logit + s).mean()) - rate

    # The mean is increasing in s: outside the bounds' range the nearer bound is the answer.
    if gap(low) >= 0:
        return low
    if gap(high) <= 0:
        return high
    return float(brentq(gap, low, high, xtol=1e-10))


def with_seasonal_shift(
    model: ChurnModel, X_season: NDArray[np.float64] | None, y_season: NDArray[np.int_] | None
) -> tuple[ChurnModel, float]:
    """``model`` with its shift measured on the seasonal cutoff's rows (features and
    ``churned``), and that shift; 0 (the model's own shift replaced) when there is no such
    cutoff or its rows hold one class only.

    The threshold moves with the shift, ``logit(t') = logit(t) - old shift + new shift``: the
    F1 threshold picked on the validation probabilities with the new shift, since a constant
    shift keeps their order and so the best-F1 set of flagged customers."""
    unshifted = dataclasses.replace(model, shift=0.0)
    shift = 0.0
    if X_season is not None and y_season is not None and len(y_season) > 0:
        rate = float(np.mean(y_season))
        if 0.0 < rate < 1.0:
            shift = matching_shift(unshifted.logit(X_season), rate)
    threshold = float(expit(logit(model.threshold) - model.shift + shift))
    return dataclasses.replace(unshifted, shift=shift, threshold=threshold), shift
