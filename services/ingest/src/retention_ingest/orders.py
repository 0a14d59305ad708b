"""Canonical JSON orders (HTTP and `orders.raw`) and their conversion to `OrderEvent`s.

An order is a cancellation when its quantities are negative (ARCHITECTURE.md, "Data rules").
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator
from retention_shared.events import NonEmptyStr, OrderEvent, OrderKind, OrderLine, order_event_id


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: NonEmptyStr
    quantity: float = Field(description="Negative for the lines of a cancellation; never zero.")
    unit_price: float = Field(gt=0)

    @model_validator(mode="after")
    def _quantity_not_zero(self) -> OrderLineIn:
        if self.quantity == 0:
            raise ValueError("quantity must not be zero")
        return self


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: NonEmptyStr
    customer_id: NonEmptyStr
    order_datetime: datetime = Field(description="ISO 8601; naive means the tenant's timezone.")
    lines: list[OrderLineIn] = Field(min_length=1)
    currency: str | None = None
    country: str | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> OrderIn:
        signs = {line.quantity > 0 for line in self.lines}
        if len(signs) > 1:
            raise ValueError("an order's quantities must be all positive or all negative")
        return self


def to_order_event(order: OrderIn, tenant_id: str, timezone: str, source: str) -> OrderEvent:
    kind = OrderKind.CANCELLATION if order.lines[0].quantity < 0 else OrderKind.PURCHASE
    occurred_at = order.order_datetime
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=ZoneInfo(timezone))
    return OrderEvent(
        event_id=order_event_id(tenant_id, order.order_id, kind),
        tenant_id=tenant_id,
        order_id=order.order_id.strip(),
        customer_id=order.customer_id.strip(),
        occurred_at=occurred_at,
        kind=kind,
        lines=[
            OrderLine(
                product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price
            )
            for line in order.lines
        ],
        total=round(sum(line.quantity * line.unit_price for line in order.lines), 6),
        currency=order.currency,
        country=order.country,
        source=source,
    )
