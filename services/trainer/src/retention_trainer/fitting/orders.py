"""Fitting the order model (`retention_bundle.models.orders`): BG/NBD alone, or BG/NBD corrected by
a Poisson booster, whichever has the lower orders MAE on the validation cutoff.

- **BG/NBD** is fitted by maximum likelihood on each cutoff's features alone (only orders up to
  that cutoff; the summary of `retention_bundle.models.purchase.purchase_summary`), so its expected
  orders are point-in-time inputs like the features.
- **The booster** (XGBoost ``count:poisson``, depth 3) is trained on the training cutoffs with
  ``log E_bgnbd`` of each row's own cutoff as base margin: its trees learn by how much BG/NBD is
  off for customers like this one (the season of the cutoff, spend, breadth), and predict
  expected orders, not a median. Early-stopped on the validation cutoff's Poisson deviance.
- **The choice** is made on the validation cutoff by MAE of orders over the churn horizon,
  never on the test cutoff; both candidates' validation MAEs go to the report. With the booster
  kept, whether the next-order dates use its correction (``scaled_dates``) is decided there too,
  by the median error in days over the validation customers who ordered within the horizon.

The served model scores with BG/NBD parameters fitted at the test cutoff (on everything known
then), as the LTV model's purchase part does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import xgboost as xgb
from numpy.typing import NDArray

from retention_bundle.models.bgnbd import BGNBDParams
from retention_bundle.models.orders import OrderModel
from retention_bundle.models.purchase import purchase_summary
from retention_trainer.classical.bgnbd import fit_bgnbd

__all__ = ["ORDER_PARAMS", "fit_order_bgnbd", "fit_order_model", "refit_order_model"]

ORDER_PARAMS: dict[str, object] = {
    "objective": "count:poisson",
    "eval_metric": "poisson-nloglik",
    "eta": 0.05,
    "max_depth": 3,
    "min_child_weight": 10,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "tree_method": "hist",
    "nthread": 2,
    "seed": 0,
}
MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 50
_MIN_EXPECTED = 1e-3


def fit_order_bgnbd(features: pl.DataFrame, initial: BGNBDParams | None = None) -> BGNBDParams:
    """BG/NBD fitted on one cutoff's features (``initial``: a warm start, e.g. the previous
    cutoff's parameters, which only saves iterations)."""
    x, t_x, T, _ = purchase_summary(features)
    return fit_bgnbd(x, t_x, T, initial=initial).params


def _bgnbd_by_cutoff(frame: pl.DataFrame, horizon_days: int) -> NDArray[np.float64]:
    """BG/NBD expected orders per row, with parameters fitted on the row's own cutoff. A cutoff
    BG/NBD cannot be fitted at (an early one where nobody has ordered twice yet) borrows the
    parameters of the nearest cutoff before it, or after it for the first ones."""
    expected = np.zeros(frame.height)
    cutoffs = frame["cutoff"].unique().sort().to_list()
    fitted: dict[object, BGNBDParams] = {}
    params: BGNBDParams | None = None
    for cutoff in cutoffs:
        try:
            params = fit_order_bgnbd(frame.filter(pl.col("cutoff") == cutoff), initial=params)
        except ValueError:
            continue
        fitted[cutoff] = params
    if not fitted:
        raise ValueError("BG/NBD could not be fitted at any cutoff: nobody ordered twice")
    for i, cutoff in enumerate(cutoffs):
        before = [fitted[c] for c in cutoffs[: i + 1] if c in fitted]
        chosen = before[-1] if before else next(fitted[c] for c in cutoffs if c in fitted)
        at = (frame["cutoff"] == cutoff).to_numpy()
        expected[at] = OrderModel(chosen, horizon_days).bgnbd_expected(frame.filter(at))
    return expected


def _matrix(
    frame: pl.DataFrame, names: tuple[str, ...], base: NDArray, label: NDArray | None
) -> xgb.DMatrix:
    return xgb.DMatrix(
        frame.select(names).to_numpy().astype(np.float32),
        label=label,
        base_margin=np.log(np.maximum(base, _MIN_EXPECTED)),
    )


def fit_order_model(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    feature_names: tuple[str, ...],
    horizon_days: int,
    served: BGNBDParams,
    valid_days: NDArray | None = None,
) -> tuple[OrderModel, dict[str, float]]:
    """The order model (BG/NBD ``served`` parameters, with or without the booster) and the
    validation orders MAE of each candidate, ``bgnbd`` and ``bgnbd_xgboost``.

    ``train`` and ``valid`` are training examples (features, ``cutoff``, ``future_orders``);
    ``valid_days`` the validation customers' days to their first order within the horizon (NaN
    without one), for the choice of ``scaled_dates``."""
    y_train = train["future_orders"].to_numpy().astype(float)
    y_valid = valid["future_orders"].to_numpy().astype(float)
    base_train = _bgnbd_by_cutoff(train, horizon_days)
    base_valid = _bgnbd_by_cutoff(valid, horizon_days)
    fitted = xgb.train(
        ORDER_PARAMS,
        _matrix(train, feature_names, base_train, y_train),
        MAX_ROUNDS,
        evals=[(_matrix(valid, feature_names, base_valid, y_valid), "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    booster = fitted[: fitted.best_iteration + 1]
    corrected = booster.predict(_matrix(valid, feature_names, base_valid, None))
    mae = {
        "bgnbd": float(np.mean(np.abs(base_valid - y_valid))),
        "bgnbd_xgboost": float(np.mean(np.abs(corrected - y_valid))),
    }
    if mae["bgnbd_xgboost"] >= mae["bgnbd"]:
        return OrderModel(served, horizon_days), mae
    scaled = False
    if valid_days is not None:
        at_valid = OrderModel(fit_order_bgnbd(valid), horizon_days, booster)
        X_valid = valid.select(feature_names).to_numpy()
        errors = {}
        for option in (False, True):
            days = dataclasses.replace(at_valid, scaled_dates=option).forecast(valid, X_valid)
            both = np.isfinite(days.next_order_days) & np.isfinite(valid_days)
            gap = np.abs(days.next_order_days[both] - valid_days[both])
            errors[option] = float(np.median(gap)) if gap.size else np.inf
        scaled = errors[True] < errors[False]
    return OrderModel(served, horizon_days, booster, scaled), mae


def refit_order_model(
    model: OrderModel, train: pl.DataFrame, feature_names: tuple[str, ...], served: BGNBDParams
) -> OrderModel:
    """The same order model on other training rows, with no new selection: the method and the
    date rule chosen on validation kept, the booster (when there is one) trained with the same
    parameters for the number of rounds early stopping chose, and ``served`` BG/NBD parameters
    (fitted on everything known at the latest date)."""
    if model.booster is None:
        return dataclasses.replace(model, bgnbd=served)
    y_train = train["future_orders"].to_numpy().astype(float)
    base = _bgnbd_by_cutoff(train, model.horizon_days)
    booster = xgb.train(
        ORDER_PARAMS,
        _matrix(train, feature_names, base, y_train),
        model.booster.num_boosted_rounds(),
    )
    return dataclasses.replace(model, bgnbd=served, booster=booster)
