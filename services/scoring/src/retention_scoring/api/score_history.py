"""`GET /v1/customers/{id}/score/history`: a customer's last score changes, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from retention_scoring.api.deps import State
from retention_scoring.api.examples import SCORED_CUSTOMER
from retention_scoring.api.routing import owner_serves
from retention_scoring.errors import not_found
from retention_scoring.score_history import KEPT_PER_CUSTOMER
from retention_shared.auth import ReadCaller
from retention_shared.events import CustomerScore
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["customers"])


class ScoreHistoryView(BaseModel):
    customer_id: str
    # The `CustomerScore` events published on `customer-scores` for this customer, newest first.
    changes: list[CustomerScore]
    # How many changes per customer scoring keeps (the most `limit` can return).
    kept: int


_EXAMPLE = {
    "customer_id": "14646",
    "changes": [
        {
            "event_type": "CustomerScore",
            "schema_version": 1,
            "tenant_id": "default",
            **SCORED_CUSTOMER,
            "reasons": ["no order for 143 days, 3x longer than usual (raises churn risk)"],
            "changed": ["risk_band", "segment"],
            "model_version": "kx3b2bq7ownflzaf",
            "features_as_of": "2011-12-09T12:50:00Z",
            "scored_at": "2011-12-09T12:50:04Z",
        }
    ],
    "kept": 50,
}


@router.get(
    "/customers/{customer_id}/score/history",
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 404, 422),
)
async def score_history(
    customer_id: str,
    caller: ReadCaller,
    state: State,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=KEPT_PER_CUSTOMER)] = 20,
) -> ScoreHistoryView:
    """The last `limit` changes of the customer's risk band, value tier or segment, as announced
    on `customer-scores`; empty for a customer not announced yet. Works without a champion."""
    await owner_serves(customer_id, caller.tenant_id, request, state)  # sharded: or its owner
    table = state.store.table(caller.tenant_id)
    if table is None or table.row(customer_id) is None:
        raise not_found(customer_id)
    return ScoreHistoryView(
        customer_id=customer_id,
        changes=state.history.latest(caller.tenant_id, customer_id, limit),
        kept=state.history.kept,
    )
