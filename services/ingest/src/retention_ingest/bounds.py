"""How large and how early or late an order's values may be, from settings.

The defaults are far above any real retailer; they exist so that no value (1e308, a quantity of
ten million at a price of a million, an order dated 2030) can overflow a total downstream or move
a tenant's clock. `cleaning` turns each bound into a reason code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from retention_shared.config import Settings

# The settings' defaults, for callers without settings (tests, the offline backtest).
_DEFAULTS = {name: field.default for name, field in Settings.model_fields.items()}
_SKEW = timedelta(hours=_DEFAULTS["max_future_skew_hours"])


@dataclass(frozen=True)
class OrderBounds:
    """Largest |quantity|, unit price and |order total|; the dates an order may carry."""

    max_quantity: float = _DEFAULTS["max_quantity"]
    max_unit_price: float = _DEFAULTS["max_unit_price"]
    max_order_total: float = _DEFAULTS["max_order_total"]
    max_future_skew: timedelta = _SKEW
    min_order_date: date = _DEFAULTS["min_order_date"]

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderBounds:
        return cls(
            max_quantity=settings.max_quantity,
            max_unit_price=settings.max_unit_price,
            max_order_total=settings.max_order_total,
            max_future_skew=timedelta(hours=settings.max_future_skew_hours),
            min_order_date=settings.min_order_date,
        )

    @property
    def earliest(self) -> datetime:
        """The first instant an order may be dated (midnight UTC of `min_order_date`)."""
        return datetime.combine(self.min_order_date, datetime.min.time(), UTC)

    def latest(self, received_at: datetime) -> datetime:
        """The last instant an order that arrived at `received_at` may be dated."""
        return received_at + self.max_future_skew


def utc_now() -> datetime:
    return datetime.now(UTC)
