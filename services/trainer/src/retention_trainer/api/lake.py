"""`GET /v1/lake`: what the trainer's transaction lake holds for the caller's tenant."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from retention_shared.auth import ReadCaller
from retention_trainer.api.deps import LakeDep
from retention_trainer.runs import orders_summary

router = APIRouter(prefix="/v1", tags=["lake"])


@router.get("/lake")
async def lake_summary(caller: ReadCaller, lake: LakeDep) -> dict[str, Any]:
    async with lake.reading() as store:
        orders = await asyncio.to_thread(store.orders, caller.tenant_id)
        size = await asyncio.to_thread(store.size_bytes, caller.tenant_id)
    return {"tenant_id": caller.tenant_id, **orders_summary(orders), "bytes": size}
