"""Customer endpoints (tenant from the key)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from retention_scoring.consumers.features import LatestFeatures
from retention_shared.auth import ReadCaller
from retention_shared.events import CustomerFeatures

router = APIRouter(prefix="/v1", tags=["customers"])


@router.get("/customers/{customer_id}/features")
async def customer_features(
    customer_id: str, request: Request, caller: ReadCaller
) -> CustomerFeatures:
    latest: LatestFeatures = request.app.state.latest
    features = latest.get((caller.tenant_id, customer_id))
    if features is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "customer_id", "problem": f"no customer {customer_id!r}"},
        )
    return features
