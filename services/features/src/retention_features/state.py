"""Per-customer order history, deduplicated by (tenant, order, kind).

Walking-skeleton store kept in memory; the durable per-partition SQLite store replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from retention_shared.events import OrderEvent, OrderHistorySummary, OrderKind


@dataclass
class CustomerHistory:
    orders: dict[tuple[str, OrderKind], OrderEvent] = field(default_factory=dict)

    def add(self, event: OrderEvent) -> bool:
        """Store the order; False if it was already there (a redelivery)."""
        key = (event.order_id, event.kind)
        if key in self.orders:
            return False
        self.orders[key] = event
        return True

    def summary(self) -> OrderHistorySummary:
        purchases = [e.occurred_at for e in self.orders.values() if e.kind is OrderKind.PURCHASE]
        return OrderHistorySummary(
            first_purchase_at=min(purchases, default=None),
            last_purchase_at=max(purchases, default=None),
            last_event_at=max(e.occurred_at for e in self.orders.values()),
            purchase_orders=len(purchases),
            cancellations=len(self.orders) - len(purchases),
        )

    def features(self) -> dict[str, float]:
        return {
            "frequency": sum(e.kind is OrderKind.PURCHASE for e in self.orders.values()),
            "monetary": sum(e.total for e in self.orders.values()),
        }


@dataclass
class FeatureStore:
    customers: dict[tuple[str, str], CustomerHistory] = field(default_factory=dict)

    def history(self, tenant_id: str, customer_id: str) -> CustomerHistory | None:
        return self.customers.get((tenant_id, customer_id))

    def add(self, event: OrderEvent) -> CustomerHistory:
        history = self.customers.setdefault((event.tenant_id, event.customer_id), CustomerHistory())
        history.add(event)
        return history
