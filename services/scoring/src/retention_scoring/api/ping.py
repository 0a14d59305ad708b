"""`GET /v1/ping`: an authenticated no-op, the framework's floor for the scoring routes.

It goes through the same middleware and key check as every route and touches no state, so
`bench/scoring` measures the score route against it on the same process.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from retention_shared.auth import ReadCaller
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["ops"])


class Pong(BaseModel):
    tenant_id: str


@router.get(
    "/ping",
    responses=example_response({"tenant_id": "default"}) | problem_responses(401, 403),
)
async def ping(caller: ReadCaller) -> Pong:
    """The key's tenant, and nothing else: a request that checks the key and touches no state."""
    return Pong(tenant_id=caller.tenant_id)
