"""`GET /v1/customers/{customer_id}/features`: the current vector (tenant from the key).

Answered from this instance's partitions; with several instances, ask the one that owns the
customer's partition (or read `customer-features`, which has every customer).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from retention_features.api.deps import Consumer
from retention_features.errors import customer_not_found
from retention_features.vectors import current_vector
from retention_shared.auth import ReadCaller
from retention_shared.events import (
    CustomerFeatures,
    HistoryOrder,
    OrderHistorySummary,
    OrderKind,
    SourceOffset,
)
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["customers"])

# Built from the model, so the example is always a valid answer.
_EXAMPLE = CustomerFeatures(
    tenant_id="default",
    customer_id="14646",
    as_of=datetime(2011, 12, 9, 12, 50, tzinfo=UTC),
    features={"recency_days": 1.0, "frequency": 73.0, "monetary": 279489.02},
    history=OrderHistorySummary(
        first_purchase_at=datetime(2010, 12, 20, 10, 9, tzinfo=UTC),
        last_purchase_at=datetime(2011, 12, 8, 12, 12, tzinfo=UTC),
        last_event_at=datetime(2011, 12, 8, 12, 12, tzinfo=UTC),
        purchase_orders=73,
        cancellations=4,
        orders=[
            HistoryOrder(
                occurred_at=datetime(2011, 12, 8, 12, 12, tzinfo=UTC),
                kind=OrderKind.PURCHASE,
                total=1034.5,
            )
        ],
    ),
    source=SourceOffset(partition=3, offset=18220),
    computed_at=datetime(2011, 12, 9, 12, 50, 2, tzinfo=UTC),
).model_dump(mode="json")


@router.get(
    "/customers/{customer_id}/features",
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 404, 422),
)
async def customer_features(
    customer_id: str, caller: ReadCaller, consumer: Consumer
) -> CustomerFeatures:
    """The customer's current feature vector, as published on `customer-features` (404 for an
    unknown customer and for another tenant's alike)."""
    for partition in list(consumer.stores):
        state_file = consumer.store_path(partition)
        vector = current_vector(
            state_file, caller.tenant_id, customer_id, consumer.ctx.settings.clock
        )
        if vector is not None:
            return vector
    raise customer_not_found(customer_id)
