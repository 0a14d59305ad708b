"""`GET /v1/customers/{customer_id}/features`: the current vector (tenant from the key)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from retention_shared.auth import ReadCaller
from retention_shared.events import OrderHistorySummary

from retention_features.state import FeatureStore

router = APIRouter(prefix="/v1", tags=["customers"])


@router.get("/customers/{customer_id}/features")
async def customer_features(
    customer_id: str, request: Request, caller: ReadCaller
) -> dict[str, object]:
    store: FeatureStore = request.app.state.store
    history = store.history(caller.tenant_id, customer_id)
    if history is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "customer_id", "problem": f"no customer {customer_id!r}"},
        )
    summary: OrderHistorySummary = history.summary()
    return {
        "customer_id": customer_id,
        "as_of": summary.last_event_at,
        "features": history.features(),
        "history": summary,
    }
