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
POLISHES = (
    ("Nelder-Mead", {"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000, "maxfev": 8000}),
    ("Powell", {"xtol": 1e-8, "ftol": 1e-12, "maxfev": 8000}),
)
# Objective values this close (relative) are the same optimum to every use made of the fit.
SAME_VALUE = 1e-9


def minimize_log_parameters(
    objective: Callable[[NDArray], float], start: NDArray
) -> optimize.OptimizeResult:
    """L-BFGS-B within bounds; if it stops short (e.g. a line-search failure on a flat ridge),
    a derivative-free Nelder-Mead polish, and if that too stops short, Powell's method.

    The lowest result wins, except that a converged one within `SAME_VALUE` of it is preferred:
    on a ridge where a parameter pair is not identified (BG/NBD with no visible dropout: a → 0,
    b → ∞) Nelder-Mead runs out of evaluations drifting along it, improving the mean
    log-likelihood by ~1e-6, while Powell stops at the same value and says it converged.
    """
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    results = [
        optimize.minimize(
            objective,
            start,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
        )
    ]
    for method, options in POLISHES:
        if any(result.success for result in results):
            break
        lowest = min(results, key=lambda result: result.fun)
        results.append(
            optimize.minimize(objective, lowest.x, method=method, bounds=bounds, options=options)
        )
    lowest = min(results, key=lambda result: result.fun)
    tolerance = SAME_VALUE * max(1.0, abs(lowest.fun))
    converged = [r for r in results if r.success and r.fun <= lowest.fun + tolerance]
    return min(converged, key=lambda result: result.fun) if converged else lowest


def finite_or_huge(value: float) -> float:
    """An objective value the optimizers can compare: non-finite becomes very large."""
    return float(value) if np.isfinite(value) else 1e300
