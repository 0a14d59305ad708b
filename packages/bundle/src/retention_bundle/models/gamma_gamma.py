r"""Gamma-Gamma model of average transaction value, and the BG/NBD × Gamma-Gamma spend baseline.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value Curves for
Customer Base Analysis. *Journal of Marketing Research* 42(4), 415-430.
Fader, P. S. & Hardie, B. G. S. (2013). The Gamma-Gamma Model of Monetary Value.
http://brucehardie.com/notes/025/

The model, for one customer with ``x ≥ 1`` repeat transactions of values ``z_1..z_x``:

- ``z_j ~ Gamma(p, ν)`` (shape ``p``, rate ``ν``), so the customer's mean spend is ``p/ν``;
- across customers ``ν ~ Gamma(q, γ)`` (shape ``q``, rate ``γ``).

The mean ``z̄ = Σ z_j / x`` is sufficient for ``ν`` and ``z̄ | ν, x ~ Gamma(px, νx)``.
Integrating ``ν`` out gives the per-customer density (FH 2013, eq. 2)

.. math::

    f(\bar z \mid p, q, γ, x) = \frac{Γ(px+q)}{Γ(px)\,Γ(q)}
        \frac{γ^q\, x^{px}\, \bar z^{px-1}}{(γ + x\bar z)^{px+q}}

**Independence assumption.** The model assumes that the spend process is independent of the
purchase process: how much a customer spends per transaction tells nothing about how often they
buy or how long they stay. That is what lets :func:`expected_spend` multiply BG/NBD's expected
number of purchases by Gamma-Gamma's expected average spend. It is an assumption to check on
each data set (FHL 2005 report a correlation of 0.11 between ``x`` and ``z̄`` on CDNOW, small
enough); when frequency and spend are strongly correlated, the product is biased.

Here are the parameters and the predictions (expected average spend, and the expected spend the
purchase model and the LTV baseline use); the likelihood and its fit are the trainer's
(`retention_trainer.classical.gamma_gamma`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from retention_bundle.models.bgnbd import (
    BGNBDParams,
    check_counts,
    conditional_expected_purchases,
)

__all__ = [
    "GammaGammaParams",
    "check_spend",
    "conditional_expected_average_spend",
    "expected_spend",
]


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: ``z ~ Gamma(p, ν)``, ``ν ~ Gamma(q, γ)`` (rates ``ν``, ``γ``)."""

    p: float
    q: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("p", "q", "gamma"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"Gamma-Gamma parameter {name} must be finite and > 0, got {value}"
                )


def check_spend(
    x: ArrayLike, mean_spend: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(x, z̄)`` as float arrays of one shape; ``ValueError`` naming what is wrong."""
    xs, zs = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(mean_spend, dtype=float))
    check_counts(x=xs, mean_spend=zs)
    return xs, zs


def conditional_expected_average_spend(
    params: GammaGammaParams, x: ArrayLike, mean_spend: ArrayLike
) -> NDArray[np.float64]:
    r"""E[Z | p, q, γ, z̄, x]: a customer's expected spend per transaction (FH 2013 eq. 5).

    .. math::

        E(Z \mid p, q, γ, \bar z, x) = \frac{p(γ + x\bar z)}{px + q - 1}
            = \frac{q-1}{px+q-1}\,\frac{pγ}{q-1} + \frac{px}{px+q-1}\,\bar z

    a weighted average of the population mean ``pγ/(q−1)`` and the customer's own mean ``z̄``,
    the weight on ``z̄`` growing with ``x``. For ``x = 0`` it is the population mean (``z̄`` is
    ignored). Needs ``q > 1`` (otherwise the population mean is infinite): ``ValueError``.
    """
    if params.q <= 1.0:
        raise ValueError(f"expected spend needs q > 1, got q = {params.q}")
    xs, zs = check_spend(x, mean_spend)
    zs = np.where(xs > 0, zs, 0.0)
    return params.p * (params.gamma + xs * zs) / (params.p * xs + params.q - 1.0)


def expected_spend(
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    mean_spend: ArrayLike,
    horizon: float,
) -> NDArray[np.float64]:
    r"""The LTV baseline: expected spend in ``(T, T+horizon]``, undiscounted.

    .. math::

        E[\text{spend}] = E[X(T, T+t] \mid x, t_x, T] \times E[Z \mid \bar z, x]

    (BG/NBD :func:`~retention_bundle.models.bgnbd.conditional_expected_purchases` times
    :func:`conditional_expected_average_spend`). The product of expectations is the expectation
    of the product only under the Gamma-Gamma independence assumption (module docstring).
    ``horizon`` is in the unit of ``T``; the result is in the unit of ``mean_spend``.
    """
    purchases = conditional_expected_purchases(bgnbd, x, t_x, T, horizon)
    return purchases * conditional_expected_average_spend(gamma_gamma, x, mean_spend)
