"""`GET /v1/lake`: how many orders the trainer holds per tenant (the caller's tenant only)."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request

from retention_shared.auth import ReadCaller

router = APIRouter(prefix="/v1", tags=["lake"])


@router.get("/lake")
async def lake_summary(request: Request, caller: ReadCaller) -> dict[str, object]:
    orders_seen: Counter[str] = request.app.state.orders_seen
    return {"tenant_id": caller.tenant_id, "orders": orders_seen[caller.tenant_id]}
