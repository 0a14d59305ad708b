"""What became of each erasure request: read from `customer-erasures` and `erasure-audit`.

Every scoring instance reads both topics whole and keeps, per request, only its id, tenant,
time and requester (never the customer's id) and the `CustomerErased` confirmations, for
`GET /v1/erasures/{id}`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import ConsumerRecord

from retention_shared.events import (
    CustomerErased,
    CustomerErasureRequested,
    EventDecodeError,
    decode_events,
)

# The services that erase; an erasure is complete once each confirmed (features and ingest
# confirm once per instance).
ERASING_SERVICES = ("features", "ingest", "scoring", "trainer")


@dataclass(frozen=True)
class Requested:
    tenant_id: str
    requested_at: datetime
    requested_by: str


@dataclass
class ErasureLedger:
    requests: dict[str, Requested] = field(default_factory=dict)
    confirmations: dict[str, dict[tuple[str, str], CustomerErased]] = field(default_factory=dict)

    def requested(self, request: CustomerErasureRequested) -> None:
        self.requests[request.erasure_id] = Requested(
            request.tenant_id, request.requested_at, request.requested_by
        )

    async def read_requests(self, records: list[ConsumerRecord]) -> None:
        for event in await _decoded(CustomerErasureRequested, records):
            self.requested(event)

    async def read_audit(self, records: list[ConsumerRecord]) -> None:
        for event in await _decoded(CustomerErased, records):
            confirmed = self.confirmations.setdefault(event.erasure_id, {})
            confirmed[(event.service, event.instance)] = event

    def status(self, tenant_id: str, erasure_id: str) -> dict[str, object] | None:
        """The request and its confirmations; None for an unknown (or another tenant's) id."""
        request = self.requests.get(erasure_id)
        if request is None or request.tenant_id != tenant_id:
            return None
        confirmed = sorted(
            self.confirmations.get(erasure_id, {}).values(), key=lambda e: (e.service, e.instance)
        )
        services = {event.service for event in confirmed}
        return {
            "erasure_id": erasure_id,
            "tenant_id": tenant_id,
            "requested_at": request.requested_at,
            "requested_by": request.requested_by,
            "complete": services.issuperset(ERASING_SERVICES),
            "waiting_for": [s for s in ERASING_SERVICES if s not in services],
            "confirmations": [
                event.model_dump(include={"service", "instance", "erased_at", "removed"})
                for event in confirmed
            ],
        }


async def _decoded(event_type: type, records: list[ConsumerRecord]) -> list:
    values = [record.value for record in records if record.value is not None]
    decoded = await asyncio.to_thread(decode_events, event_type, values)
    return [event for event in decoded if not isinstance(event, EventDecodeError)]
