"""The optimizer both classical models fit with: minimize a negative log-likelihood over
log-parameters, so every parameter stays positive without constraints."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

__all__ = ["minimize_log_parameters"]

# log-parameters in [-30, 30]: wide enough for any time unit, and exp() cannot overflow.
LOG_BOUND = 30.0


def minimize_log_parameters(
    objective: Callable[[NDArray], float], start: NDArray
) -> optimize.OptimizeResult:
    """L-BFGS-B within bounds; if it stops short (e.g. a line-search failure on a flat ridge),
    a derivative-free Nelder-Mead polish, keeping whichever is lower."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    best = optimize.minimize(
        objective,
        start,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
    )
    if not best.success:
        polished = optimize.minimize(
            objective,
            best.x,
            method="Nelder-Mead",
            bounds=bounds,
            options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000, "maxfev": 8000},
        )
        best = polished if polished.fun <= best.fun else best
    return best


def finite_or_huge(value: float) -> float:
    """An objective value the optimizers can compare: non-finite becomes very large."""
    return float(value) if np.isfinite(value) else 1e300
