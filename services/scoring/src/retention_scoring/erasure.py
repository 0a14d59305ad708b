"""Erasing a customer from scoring: the request (`DELETE /v1/customers/{id}`) and its effect.

The route publishes `CustomerErasureRequested` on `customer-erasures`
(`publishers/customer_erasures.py`); every service erases
what it holds. Scoring holds no files: the customer's vector is dropped from the in-memory
feature store (so scores, lists, segments, insights and campaign plans no longer count them),
so is their score history, and a tombstone goes to `customer-scores`. Other scoring replicas
drop the customer when the features service's tombstone on `customer-features` reaches them.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from retention_scoring.score_events import ScoreEvents
from retention_scoring.store import FeatureStore
from retention_shared.auth import Principal
from retention_shared.events import CustomerErasureRequested, utc_now
from retention_shared.kafka.dead_letters import TransientFailure

GROUP_ID = "retention-scoring.erasures"


def requester(principal: Principal, api_key: str) -> str:
    """Who asked, for the audit trail: tenant, roles and a short digest of the key — enough to
    tell keys apart, never the key."""
    roles = "+".join(sorted(role.value for role in principal.roles))
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:12]
    return f"{principal.tenant_id}/{roles}/key:{digest}"


def erasure_request(
    principal: Principal, api_key: str, customer_id: str
) -> CustomerErasureRequested:
    return CustomerErasureRequested(
        erasure_id=uuid.uuid4().hex,
        tenant_id=principal.tenant_id,
        customer_id=customer_id,
        requested_at=utc_now(),
        requested_by=requester(principal, api_key),
    )


@dataclass
class ScoringErasure:
    store: FeatureStore
    score_events: ScoreEvents

    async def erase(self, request: CustomerErasureRequested) -> dict[str, int]:
        events = self.score_events
        if not events.publisher.started:
            raise TransientFailure("the scoring producer is not started yet")
        tenant_id, customer_id = request.tenant_id, request.customer_id
        removed = self.store.remove(tenant_id, customer_id)
        events.published.get(tenant_id, {}).pop(customer_id, None)
        changes = events.history.erase(tenant_id, customer_id)
        await events.publisher.erase(tenant_id, [customer_id])
        return {"customers": int(removed), "score_changes": changes}
