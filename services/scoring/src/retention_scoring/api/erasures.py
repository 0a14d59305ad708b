"""`DELETE /v1/customers/{id}` (role `admin`): erase a customer everywhere (the right to be
forgotten). 202 with the erasure's id; each service confirms on `erasure-audit`, and
`GET /v1/erasures/{id}` says which have."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from retention_scoring.api.deps import Context, ErasureRequests, Ledger
from retention_scoring.erasure import erasure_request
from retention_scoring.errors import unavailable, unprocessable
from retention_shared.auth import AdminCaller
from retention_shared.problems import problem_responses
from retention_shared.safe_text import id_problem

router = APIRouter(prefix="/v1", tags=["customers"])


class ErasureAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "erasure_id": "5d1f0c2a9b7e4e61",
                    "tenant_id": "default",
                    "requested_at": "2024-05-01T09:00:00Z",
                    "audit_topic": "erasure-audit",
                }
            ]
        }
    )

    erasure_id: str
    tenant_id: str
    requested_at: datetime
    # Where the services confirm (`CustomerErased`, which never names the customer).
    audit_topic: str


@router.delete(
    "/customers/{customer_id}",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 422, 503),
)
async def erase_customer(
    customer_id: str,
    request: Request,
    caller: AdminCaller,
    ctx: Context,
    requests: ErasureRequests,
    ledger: Ledger,
) -> ErasureAccepted:
    """Remove the customer of the key's tenant from features, scores, the lake and stored
    rejects, with tombstones on `customer-features` and `customer-scores`.

    The same 202 whether or not the tenant has such a customer (another tenant's customer is
    never touched): an erasure of an id not seen yet still keeps its orders dated up to now out
    if upstream sends them later. Orders dated after the request are a new history."""
    if (problem := id_problem(customer_id)) is not None:
        raise unprocessable("customer_id", problem)
    api_key = request.headers["authorization"].partition(" ")[2].strip()
    erasure = erasure_request(caller, api_key, customer_id)
    try:
        await requests.request(erasure)
    except Exception as error:
        raise unavailable(
            f"the erasure request was not confirmed by the broker ({type(error).__name__}); "
            "send it again"
        ) from None
    ledger.requested(erasure)
    return ErasureAccepted(
        erasure_id=erasure.erasure_id,
        tenant_id=erasure.tenant_id,
        requested_at=erasure.requested_at,
        audit_topic=ctx.topics.erasure_audit,
    )


class ErasureConfirmation(BaseModel):
    service: str
    instance: str
    erased_at: datetime
    removed: dict[str, int] = Field(description='What was removed, e.g. `{"orders": 12}`.')


class ErasureStatus(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "erasure_id": "5d1f0c2a9b7e4e61",
                    "tenant_id": "default",
                    "requested_at": "2024-05-01T09:00:00Z",
                    "requested_by": "key:3fa1b2c4",
                    "complete": False,
                    "waiting_for": ["trainer"],
                    "confirmations": [
                        {
                            "service": "features",
                            "instance": "features-0",
                            "erased_at": "2024-05-01T09:00:01Z",
                            "removed": {"orders": 12},
                        }
                    ],
                }
            ]
        }
    )

    erasure_id: str
    tenant_id: str
    requested_at: datetime
    requested_by: str
    complete: bool = Field(description="Features, ingest, scoring and trainer all confirmed.")
    waiting_for: list[str] = Field(description="The services that have not confirmed yet.")
    confirmations: list[ErasureConfirmation]


@router.get(
    "/erasures/{erasure_id}", tags=["erasures"], responses=problem_responses(401, 403, 404, 422)
)
async def erasure_status(erasure_id: str, caller: AdminCaller, ledger: Ledger) -> ErasureStatus:
    """The request (when, by whom) and each service's confirmation with what it removed;
    `complete` once features, ingest, scoring and trainer all confirmed. 404 for an unknown id
    or another tenant's."""
    found = ledger.status(caller.tenant_id, erasure_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "erasure_id", "problem": f"no erasure {erasure_id!r}"},
        )
    return ErasureStatus.model_validate(found)
