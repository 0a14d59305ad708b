"""`GET /v1/lake`: what the trainer's transaction lake holds for the caller's tenant."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from retention_shared.auth import ReadCaller
from retention_shared.problems import problem_responses
from retention_trainer.api.deps import LakeDep
from retention_trainer.runs.history import orders_summary

router = APIRouter(prefix="/v1", tags=["lake"])


# Times as `orders_summary` writes them (`isoformat()`), passed through unchanged.
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class LakeSummary(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "default",
                    "orders": 18532,
                    "customers": 4339,
                    "first_order_at": "2009-12-01T07:45:00+00:00",
                    "last_order_at": "2011-12-09T12:50:00+00:00",
                    "bytes": 1843221,
                }
            ]
        }
    )

    tenant_id: str
    orders: int = Field(description="Orders (and cancellations) in the lake.")
    customers: int
    first_order_at: IsoTime | None = Field(description="Null for an empty lake.")
    last_order_at: IsoTime | None = Field(description="Null for an empty lake.")
    bytes: int = Field(description="The tenant's Parquet files, in bytes.")


@router.get("/lake", responses=problem_responses(401, 403))
async def lake_summary(caller: ReadCaller, lake: LakeDep) -> LakeSummary:
    """What the trainer's lake holds for the tenant: orders, customers, first and last order."""
    async with lake.reading() as store:
        orders = await asyncio.to_thread(store.orders, caller.tenant_id)
        size = await asyncio.to_thread(store.size_bytes, caller.tenant_id)
    return LakeSummary(tenant_id=caller.tenant_id, **orders_summary(orders), bytes=size)
