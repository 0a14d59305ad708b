"""BG/NBD: the beta-geometric / negative-binomial model of repeat purchasing.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy Way:
An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2), 275-284.

The model, for one customer whose first purchase is at time 0:

- while alive, purchases follow a Poisson process with rate ``λ``;
- right after each *repeat* purchase the customer drops out for good with probability ``p``
  (so a customer can only die right after a purchase, and is alive while ``x = 0``);
- across customers ``λ ~ Gamma(r, α)`` (shape ``r``, rate ``α``) and ``p ~ Beta(a, b)``,
  independently.

The data per customer are ``x`` (number of repeat purchases in ``(0, T]``), ``t_x`` (time of the
last repeat purchase, 0 when ``x = 0``) and ``T`` (time since the first purchase), in any time
unit; ``α`` is in that unit, so parameters fitted in weeks and in days differ by ``α``'s scale.

Here are the parameters (a small frozen dataclass that serializes with
:func:`dataclasses.asdict`) and the predictions the purchase model needs, as pure functions over
numpy arrays; the likelihood and its maximum-likelihood fit are the trainer's
(`retention_trainer.classical.bgnbd`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = [
    "BGNBDParams",
    "check_summary",
    "conditional_expected_purchases",
    "probability_alive",
]


@dataclass(frozen=True, slots=True)
class BGNBDParams:
    """BG/NBD parameters: ``λ ~ Gamma(r, α)`` (rate ``α``), ``p ~ Beta(a, b)``."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} must be finite and > 0, got {value}")


def check_counts(**arrays: NDArray[np.float64]) -> None:
    """Every array finite and >= 0, and `x` (repeat purchases) whole; `ValueError` naming it."""
    for name, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        if np.any(arr < 0):
            raise ValueError(f"{name} must be >= 0")
    if np.any(arrays["x"] != np.round(arrays["x"])):
        raise ValueError("x (repeat purchases) must be whole numbers")


def check_summary(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(x, t_x, T)`` as float arrays of one shape; ``ValueError`` naming what is wrong."""
    xs, txs, Ts = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    xs, txs, Ts = np.broadcast_arrays(xs, txs, Ts)
    check_counts(x=xs, t_x=txs, T=Ts)
    if np.any(txs > Ts):
        raise ValueError("t_x (recency) must be <= T (age) for every customer")
    return xs, txs, Ts


def _log_odds_dead(
    params: BGNBDParams, x: NDArray[np.float64], t_x: NDArray[np.float64], T: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``log[P(dead) / P(alive)] = log a − log(b+x−1) + (r+x) log((α+T)/(α+t_x))`` for x > 0."""
    x_safe = np.where(x > 0, x, 1.0)
    log_odds: NDArray[np.float64] = (
        np.log(params.a)
        - np.log(params.b + x_safe - 1.0)
        + (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + t_x))
    )
    return log_odds


def probability_alive(
    params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    r"""P(alive at T | x, t_x, T) (FHL 2005 eq. 13; Fader, Hardie & Lee 2008 note).

    .. math::

        P(\text{alive}) = \left[1 + δ_{x>0}\,\frac{a}{b+x-1}
            \left(\frac{α+T}{α+t_x}\right)^{r+x}\right]^{-1}

    evaluated as ``expit(−log-odds)``; it is 1 for ``x = 0`` (no repeat purchase, no chance yet
    to drop out). Do not use ``1 − P(alive)`` as a churn score: it puts every one-time buyer
    at 0, i.e. ranks them as the *safest* customers — use the trainer's
    ``probability_no_purchase`` (`retention_trainer.classical.bgnbd`).
    """
    xs, txs, Ts = check_summary(x, t_x, T)
    alive = special.expit(-_log_odds_dead(params, xs, txs, Ts))
    return np.where(xs > 0, alive, 1.0)


def conditional_expected_purchases(
    params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, t: float
) -> NDArray[np.float64]:
    r"""E[X(T, T+t] | x, t_x, T]: expected purchases in the next ``t`` (FHL 2005 eq. 10).

    .. math::

        E[Y(t) \mid x, t_x, T] =
            \frac{\dfrac{a+b+x-1}{a-1}\left[1 - \left(\dfrac{α+T}{α+T+t}\right)^{r+x}
                {}_2F_1\!\left(r+x, b+x; a+b+x-1; \dfrac{t}{α+T+t}\right)\right]}
            {1 + δ_{x>0}\,\dfrac{a}{b+x-1}\left(\dfrac{α+T}{α+t_x}\right)^{r+x}}

    The denominator is ``1 / P(alive)``. The Gaussian hypergeometric function is
    ``scipy.special.hyp2f1``; its argument is in ``[0, 1)`` so the series converges. The
    expression is well defined for ``a < 1`` too (both factors of the numerator change sign);
    ``a = 1`` exactly is a removable singularity handled by nudging ``a``.
    """
    if not (np.isfinite(t) and t >= 0):
        raise ValueError(f"horizon t must be finite and >= 0, got {t}")
    xs, txs, Ts = check_summary(x, t_x, T)
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1.0) > 1e-9 else 1.0 + 1e-9
    z = t / (alpha + Ts + t)
    hyp = special.hyp2f1(r + xs, b + xs, a + b + xs - 1.0, z)
    log_ratio = (r + xs) * (np.log(alpha + Ts) - np.log(alpha + Ts + t))
    numerator = (a + b + xs - 1.0) / (a - 1.0) * (1.0 - np.exp(log_ratio) * hyp)
    alive = probability_alive(params, xs, txs, Ts)
    expected: NDArray[np.float64] = numerator * alive
    return expected
