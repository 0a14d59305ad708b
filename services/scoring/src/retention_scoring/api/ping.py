"""`GET /v1/ping`: an authenticated no-op, the framework's floor for the scoring routes.

It goes through the same middleware and key check as every route and touches no state, so
`bench/scoring` measures the score route against it on the same process.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from retention_shared.auth import ReadCaller

router = APIRouter(prefix="/v1", tags=["ops"])


class Pong(BaseModel):
    tenant_id: str


@router.get("/ping")
async def ping(caller: ReadCaller) -> Pong:
    return Pong(tenant_id=caller.tenant_id)
