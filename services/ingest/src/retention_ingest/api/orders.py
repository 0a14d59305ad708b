"""`POST /v1/orders`: one canonical order or a batch, answered after the broker acknowledged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from retention_shared.auth import IngestCaller
from retention_shared.service import ServiceContext

from retention_ingest.orders import OrderIn, to_order_event
from retention_ingest.publishing import publish_order_events

router = APIRouter(prefix="/v1", tags=["orders"])


class OrdersBatch(BaseModel):
    orders: list[OrderIn]


class OrderOutcome(BaseModel):
    order_id: str
    status: str
    event_id: str


class OrdersResponse(BaseModel):
    accepted: int
    results: list[OrderOutcome]


@router.post("/orders")
async def post_orders(
    request: Request,
    caller: IngestCaller,
    body: Annotated[dict[str, Any], Body(description="One order, or {'orders': [...]}.")],
) -> OrdersResponse:
    ctx: ServiceContext = request.app.state.ctx
    try:
        orders = (
            OrdersBatch.model_validate(body).orders
            if "orders" in body
            else [OrderIn.model_validate(body)]
        )
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    limit = ctx.settings.max_orders_per_request
    if len(orders) > limit:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            detail={
                "field": "orders",
                "problem": f"{len(orders)} orders; at most {limit} per request",
            },
        )
    events = [
        to_order_event(order, caller.tenant_id, ctx.settings.default_timezone, source="http")
        for order in orders
    ]
    try:
        await publish_order_events(ctx, events)
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"field": None, "problem": f"broker did not acknowledge: {exc}"},
            headers={"Retry-After": "5"},
        ) from None
    return OrdersResponse(
        accepted=len(events),
        results=[
            OrderOutcome(order_id=e.order_id, status="accepted", event_id=e.event_id)
            for e in events
        ],
    )
