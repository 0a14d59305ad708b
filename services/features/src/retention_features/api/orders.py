"""`GET /v1/customers/{customer_id}/orders`: a customer's orders, newest first, keyset-paged.

Read from the partition state the features are computed from (committed orders only), so the
list is exactly what the customer's vector counts: amendments replaced, withdrawn orders gone,
an erased customer a 404. Like the features route, it answers from this instance's partitions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from retention_features.api.deps import Consumer
from retention_features.errors import customer_not_found
from retention_features.store import OrderRow, PartitionStore
from retention_shared.auth import ReadCaller
from retention_shared.cursors import CursorError, decode_cursor, encode_cursor
from retention_shared.events import OrderKind
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["customers"])

_LIST = "orders"
_KEY_SHAPE = (int, str, str)  # (occurred_at µs, order id, kind): unique per customer
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CustomerOrder(BaseModel):
    order_id: str
    occurred_at: datetime
    lines: int | None = Field(
        description="Order lines (after ingest's cleaning); null for an order stored before "
        "line counts were kept."
    )
    net_value: float = Field(
        description="What the order adds to the customer's net spend (`monetary`): its total, "
        "negative for a cancellation."
    )
    cancelled: bool = Field(description="A cancellation or return (negative quantities).")
    currency: str | None = None


class OrderHistory(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "14646",
                    "orders": [
                        {
                            "order_id": "581502",
                            "occurred_at": "2011-12-09T09:15:00Z",
                            "lines": 18,
                            "net_value": 1034.5,
                            "cancelled": False,
                            "currency": "GBP",
                        }
                    ],
                    "next_cursor": "WyJvcmRlcnMiLDEzMjM0MjIxMDAwMDAwMDAsIjU4MTUwMiIsIm9yZGVyIl0",
                }
            ]
        }
    )

    customer_id: str
    orders: list[CustomerOrder]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def _order(row: OrderRow) -> CustomerOrder:
    return CustomerOrder(
        order_id=row.order_id,
        occurred_at=_EPOCH + timedelta(microseconds=row.occurred_at_us),
        lines=row.lines,
        net_value=row.total,
        cancelled=row.kind == OrderKind.CANCELLATION.value,
        currency=row.currency,
    )


def _after(cursor: str | None) -> tuple[int, str, str] | None:
    if cursor is None:
        return None
    try:
        moment, order_id, kind = decode_cursor(_LIST, cursor, _KEY_SHAPE)
    except CursorError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"field": "cursor", "problem": str(error)}
        ) from None
    return int(moment), str(order_id), str(kind)


@router.get("/customers/{customer_id}/orders", responses=problem_responses(401, 403, 404, 422))
async def customer_orders(
    customer_id: str,
    caller: ReadCaller,
    consumer: Consumer,
    limit: Annotated[int, Query(ge=1, le=500, description="Orders per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page.")
    ] = None,
) -> OrderHistory:
    """The customer's orders, newest first, as the features count them (amendments replaced,
    withdrawn orders gone); the next page with `cursor` = the previous `next_cursor`."""
    after = _after(cursor)
    for partition in list(consumer.stores):
        store = PartitionStore(consumer.store_path(partition), readonly=True)
        try:
            if not store.has_customer(caller.tenant_id, customer_id):
                continue
            # One row more than the page says whether another page follows.
            rows = store.order_page(caller.tenant_id, customer_id, limit + 1, after)
        finally:
            store.close()
        page = rows[:limit]
        last = page[-1] if len(rows) > limit else None
        return OrderHistory(
            customer_id=customer_id,
            orders=[_order(row) for row in page],
            next_cursor=None
            if last is None
            else encode_cursor(_LIST, (last.occurred_at_us, last.order_id, last.kind)),
        )
    raise customer_not_found(customer_id)
