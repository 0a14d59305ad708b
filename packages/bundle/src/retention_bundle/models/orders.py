"""Expected orders and the next-order date: BG/NBD on the shared features, optionally corrected by
a learned booster.

**Expected orders** over ``horizon_days`` (the churn horizon) is BG/NBD's conditional expectation
``E_bgnbd = E[X(T, T+t] | x, t_x, T]`` (FHL 2005 eq. 10,
:func:`~retention_bundle.models.bgnbd.conditional_expected_purchases`) on the summary the
registry features determine (:func:`~retention_bundle.models.purchase.purchase_summary`). With a
``booster`` (XGBoost ``count:poisson`` trained with ``log E_bgnbd`` as its base margin, so its
trees learn a multiplicative correction of BG/NBD from the features), it is
``E_bgnbd · exp(trees)``. The trainer keeps the booster only when it has the lower orders MAE on
the validation cutoff (`retention_trainer.fitting.orders`).

**Next-order date.** BG/NBD gives the chance of at least one order in the next ``t`` days
(`retention_trainer.baselines.bgnbd.probability_no_purchase`, its complement):

.. math::

    F(t) = P(\\text{alive}) \\left[1 - \\left(\\frac{α+T}{α+T+k\\,t}\\right)^{r+x}\\right]

with ``k = 1`` for BG/NBD alone. With a booster, its correction ``k = expected / E_bgnbd`` can be
read as a rate multiplier (an alive customer's purchase rate ``λ`` scaled by ``k`` is time scaled
by ``k``), so the curve and the expected orders tell the same story; ``scaled_dates`` says
whether the dates use it, which the trainer decides on the validation cutoff by the median
error in days (a correction that counts orders better need not time the first one better). ``next_order_days`` is the ``t`` with
``F(t) = 0.5``, in closed form:

.. math::

    t_{50} = \\frac{α+T}{k} \\left[\\left(1 - \\frac{0.5}{P(\\text{alive})}\\right)^{-1/(r+x)} - 1\\right]

and NaN (no date) when ``F(365) < 0.5``: when ``P(alive) <= 0.5`` (the curve never reaches one
half) or ``t_50 > 365`` days.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
import xgboost as xgb
from numpy.typing import NDArray

from retention_bundle.models.bgnbd import (
    BGNBDParams,
    conditional_expected_purchases,
    probability_alive,
)
from retention_bundle.models.purchase import purchase_summary

__all__ = ["NEXT_ORDER_MAX_DAYS", "OrderForecast", "OrderModel", "median_days_to_order"]

# A next-order date is given only when the chance of an order within this many days is >= 50%.
NEXT_ORDER_MAX_DAYS = 365.0
# E_bgnbd is floored here before its log becomes the booster's base margin.
_MIN_EXPECTED = 1e-3


def median_days_to_order(
    params: BGNBDParams,
    x: NDArray[np.float64],
    t_x: NDArray[np.float64],
    T: NDArray[np.float64],
    rate_scale: NDArray[np.float64] | float = 1.0,
) -> NDArray[np.float64]:
    """Days ``t`` with ``F(t) = 0.5`` for BG/NBD summaries ``(x, t_x, T)`` in days (the module
    docstring's ``t_50``, ``rate_scale`` its ``k``); NaN where ``F(NEXT_ORDER_MAX_DAYS) < 0.5``."""
    alive = probability_alive(params, x, t_x, T)
    T = np.asarray(T, dtype=float)
    scale = np.clip(np.broadcast_to(np.asarray(rate_scale, dtype=float), alive.shape), 1e-6, None)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        silent = 1.0 - 0.5 / alive  # ((α+T)/(α+T+k·t))^(r+x) at the median
        days = (params.alpha + T) / scale * (np.power(silent, -1.0 / (params.r + x)) - 1.0)
    reached = (alive > 0.5) & np.isfinite(days) & (days <= NEXT_ORDER_MAX_DAYS)
    return np.where(reached, np.clip(days, 0.0, None), np.nan)


@dataclass(frozen=True, slots=True)
class OrderForecast:
    """Per row: expected orders over the horizon, and days from the features' clock until the
    chance of an order reaches 50% (NaN: below 50% within `NEXT_ORDER_MAX_DAYS`)."""

    expected_orders: NDArray[np.float64]
    next_order_days: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OrderModel:
    """BG/NBD parameters (days), the horizon, and the optional correcting booster."""

    bgnbd: BGNBDParams
    horizon_days: int
    booster: xgb.Booster | None = None
    # Whether next-order dates use the booster's correction as a rate multiplier (k above).
    scaled_dates: bool = False

    @property
    def method(self) -> str:
        return "bgnbd" if self.booster is None else "bgnbd_xgboost"

    def bgnbd_expected(self, features: pl.DataFrame) -> NDArray[np.float64]:
        """BG/NBD's expected orders over the horizon per row of a features frame."""
        x, t_x, T, _ = purchase_summary(features)
        expected = conditional_expected_purchases(self.bgnbd, x, t_x, T, self.horizon_days)
        return np.clip(np.nan_to_num(expected, nan=0.0, posinf=0.0), 0.0, None)

    def forecast(self, features: pl.DataFrame, X: NDArray[np.float64]) -> OrderForecast:
        """Expected orders and next-order days per row; ``X`` is the same rows as the bundle's
        feature matrix (read only with a booster)."""
        base = self.bgnbd_expected(features)
        expected = base
        if self.booster is not None and len(base):
            margin = self.booster.inplace_predict(
                np.asarray(X, dtype=np.float32),
                predict_type="margin",
                base_margin=np.log(np.maximum(base, _MIN_EXPECTED)).astype(np.float32),
            )
            expected = np.exp(np.asarray(margin, dtype=float))
        scale: NDArray[np.float64] | float = 1.0
        if self.scaled_dates:
            scale = np.where(base > 0, expected / np.maximum(base, _MIN_EXPECTED), 1.0)
        return OrderForecast(expected, self.next_order_days(features, scale))

    def next_order_days(
        self, features: pl.DataFrame, rate_scale: NDArray[np.float64] | float = 1.0
    ) -> NDArray[np.float64]:
        """Days until ``F(t) = 0.5`` per row (see the module docstring); NaN without a date."""
        x, t_x, T, _ = purchase_summary(features)
        return median_days_to_order(self.bgnbd, x, t_x, T, rate_scale)

    def as_dict(self, booster_file: str | None) -> dict[str, object]:
        return {
            "method": self.method,
            "horizon_days": self.horizon_days,
            "bgnbd": asdict(self.bgnbd),
            "booster": booster_file if self.booster is not None else None,
            "scaled_dates": self.scaled_dates,
            "next_order_max_days": NEXT_ORDER_MAX_DAYS,
        }
