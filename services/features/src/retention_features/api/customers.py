"""`GET /v1/customers/{customer_id}/features`: the current vector (tenant from the key).

Answered from this instance's partitions; with several instances, ask the one that owns the
customer's partition (or read `customer-features`, which has every customer).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from retention_features.consumers.transactions import TransactionsConsumer
from retention_features.vectors import current_vector
from retention_shared.auth import ReadCaller
from retention_shared.events import CustomerFeatures

router = APIRouter(prefix="/v1", tags=["customers"])


@router.get("/customers/{customer_id}/features")
async def customer_features(
    customer_id: str, request: Request, caller: ReadCaller
) -> CustomerFeatures:
    consumer: TransactionsConsumer = request.app.state.consumer
    for partition in list(consumer.stores):
        state_file = consumer.store_path(partition)
        vector = current_vector(
            state_file, caller.tenant_id, customer_id, consumer.ctx.settings.clock
        )
        if vector is not None:
            return vector
    raise HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail={"field": "customer_id", "problem": f"no customer {customer_id!r}"},
    )
