"""Each customer's last score changes, as published on `customer-scores`, newest first.

Filled from what every instance reads back from `customer-scores` (its own announcements and
other instances'), so any instance answers for any customer and a restart rebuilds it from the
topic. Bounded: the last `KEPT_PER_CUSTOMER` changes per customer, kept as the event's bytes
(under 1 KB each) and decoded only when asked for. A tombstone on the topic, an erasure and a
features tombstone drop the customer's history. `customer-scores` is compacted, so after a
restart a customer's history is what the log still holds (after compaction: the latest change).
No I/O.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from retention_shared.events import CustomerScore, EventDecodeError, decode_events

__all__ = ["KEPT_PER_CUSTOMER", "ScoreHistory"]

KEPT_PER_CUSTOMER = 100


class ScoreHistory:
    def __init__(self, kept: int = KEPT_PER_CUSTOMER) -> None:
        self.kept = kept
        self._changes: dict[str, dict[str, deque[bytes]]] = {}

    def record(self, tenant_id: str, customer_id: str, event: bytes) -> None:
        """A `CustomerScore` read from the topic (its bytes), in log order."""
        customers = self._changes.setdefault(tenant_id, {})
        ring = customers.get(customer_id)
        if ring is None:
            ring = customers[customer_id] = deque(maxlen=self.kept)
        ring.append(event)

    def erase(self, tenant_id: str, customer_id: str) -> int:
        """Forget a customer's history; how many changes it held."""
        ring = self._changes.get(tenant_id, {}).pop(customer_id, None)
        return len(ring) if ring is not None else 0

    def customers(self, tenant_id: str) -> list[str]:
        return list(self._changes.get(tenant_id, {}))

    def tenants(self) -> list[str]:
        return list(self._changes)

    def latest(self, tenant_id: str, customer_id: str, limit: int) -> list[CustomerScore]:
        """The customer's last `limit` changes, newest first."""
        ring = self._changes.get(tenant_id, {}).get(customer_id)
        if not ring:
            return []
        payloads = list(islice(reversed(ring), limit))
        return [
            e for e in decode_events(CustomerScore, payloads) if not isinstance(e, EventDecodeError)
        ]
