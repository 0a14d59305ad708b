"""Which feature vectors the model can score: the bounds every value must keep.

Accepted values are far above any real customer and far below where the model's arithmetic
(float32 trees, BG/NBD's exponentials) stops being finite: at 1e15 every feature still gives a
finite score, at 1e308 XGBoost refuses the whole matrix — one such vector on `customer-features`
made every population of its tenant fail. Requests (`api/inputs.py`) and the consumer of
`customer-features` apply the same bounds.
"""

from __future__ import annotations

import math

from retention_shared.events import CustomerFeatures, EventDecodeError
from retention_shared.safe_text import id_problem

__all__ = ["MAX_FEATURE_MAGNITUDE", "vector_problem"]

# |value| above this is no customer: 1e15 days, orders or currency units.
MAX_FEATURE_MAGNITUDE = 1e15


def _out_of_range(value: float) -> bool:
    return not (math.isfinite(value) and abs(value) <= MAX_FEATURE_MAGNITUDE)


def vector_problem(event: CustomerFeatures) -> EventDecodeError | None:
    """Why scoring cannot hold `event` (an `invalid_event` naming the field), or None."""
    for field in ("tenant_id", "customer_id"):
        if (problem := id_problem(getattr(event, field))) is not None:
            return EventDecodeError("invalid_event", f"{field} {problem}", field)
    for name, value in event.features.items():
        if _out_of_range(value):
            return EventDecodeError(
                "invalid_event",
                f"{name} = {value!r} is not a finite number within ±{MAX_FEATURE_MAGNITUDE:g}",
                f"features.{name}",
            )
    for i, order in enumerate(event.history.orders):
        if _out_of_range(order.total):
            return EventDecodeError(
                "invalid_event",
                f"an order total of {order.total!r} is not within ±{MAX_FEATURE_MAGNITUDE:g}",
                f"history.orders.{i}.total",
            )
    return None
