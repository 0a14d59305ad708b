"""`POST /v1/orders`: one canonical order or a batch, answered after the broker acknowledged.

The body's shape is checked here (422 naming the field); the values go through the same cleaning
as files, so each order comes back accepted (with its event ids, and any line dropped with its
reason) or rejected with reason codes and the offending field. An order sent before with other
content needs a higher `version` (`amendments`); without one the request answers 409 naming the
fields that differ, and nothing is published.
"""

from __future__ import annotations

from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Body, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from retention_ingest import metrics
from retention_ingest.amendments import Fingerprint, fingerprints, judge, with_withdrawals
from retention_ingest.bounds import OrderBounds, utc_now
from retention_ingest.cleaning import CleaningPlan
from retention_ingest.dates import DateFormat
from retention_ingest.order_events import order_event_payloads
from retention_ingest.publishing import BrokerUnavailable, MessageTooLarge, OrderPublisher
from retention_ingest.records import (
    CANONICAL_MAPPING,
    ORDER_LEVEL,
    as_text,
    clean_records,
    flatten_record,
)
from retention_ingest.store import IngestStore
from retention_shared.auth import IngestCaller
from retention_shared.safe_text import id_problem
from retention_shared.service import ServiceContext

router = APIRouter(prefix="/v1", tags=["orders"])


def _not_boolean(value: object) -> object:
    # pydantic's lax int reads `true` as 1: a customer "1" nobody sent.
    if isinstance(value, bool):
        raise PydanticCustomError("not_boolean", "must be text or a number, not a boolean")
    return value


Scalar = Annotated[str | int | float | None, BeforeValidator(_not_boolean)]


def _printable(value: str | None) -> str | None:
    # Kept with the order in every event and the lake: a lone surrogate became "\x1a" there,
    # a NUL or ESC stayed. Printable text of an id's length; empty means none, as in files.
    if value is not None and value.strip() and (problem := id_problem(value)) is not None:
        raise PydanticCustomError("unprintable_text", problem)
    return value


Text = Annotated[str | None, AfterValidator(_printable)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: Scalar = None
    quantity: Scalar = Field(None, description="Negative for a cancellation's lines.")
    unit_price: Scalar = None


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: Scalar = None
    customer_id: Scalar = None
    order_datetime: Scalar = Field(None, description="ISO 8601; naive means the tenant's timezone.")
    lines: list[LineIn] = Field(min_length=1)
    currency: Text = None
    country: Text = None
    version: StrictInt | None = Field(
        None,
        ge=0,
        le=2**53,
        description="Send an order again with a higher version to amend it (0 when omitted).",
    )


class OrdersBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[OrderIn]


class Problem(BaseModel):
    code: str
    field: str | None


class OrderResult(BaseModel):
    index: int
    order_id: str | None
    status: str  # accepted | rejected
    event_ids: list[str]
    problems: list[Problem]  # rejected lines; for an accepted order, the lines dropped


class OrdersResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[OrderResult]


@router.post("/orders")
async def post_orders(
    request: Request,
    caller: IngestCaller,
    body: Annotated[dict[str, Any], Body(description="One order, or {'orders': [...]}.")],
) -> OrdersResponse:
    ctx: ServiceContext = request.app.state.ctx
    limit = ctx.settings.max_orders_per_request
    if isinstance(body.get("orders"), list) and len(body["orders"]) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail={
                "field": "orders",
                "problem": f"{len(body['orders'])} orders; at most {limit} per request",
            },
        )
    try:
        orders = (
            OrdersBatch.model_validate(body).orders
            if "orders" in body
            else [OrderIn.model_validate(body)]
        )
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None

    received_at = utc_now()
    store: IngestStore = request.app.state.ingest_store
    _, saved_timezone = store.mapping(caller.tenant_id)
    plan = CleaningPlan(
        CANONICAL_MAPPING,
        DateFormat.iso(),
        saved_timezone or ctx.settings.default_timezone,
        bounds=OrderBounds.from_settings(ctx.settings),
        received_at=received_at,
    )
    records = [flatten_record(order.model_dump(exclude={"version"})) for order in orders]
    result = clean_records(
        records,
        plan,
        tenant_id=caller.tenant_id,
        source="http",
        order_ids=[None if o.order_id is None else as_text(o.order_id) for o in orders],
    )
    events = result.events
    if events.height:
        index_of = {eid: o.index for o in result.outcomes for eid in o.event_ids}
        indexes = [index_of[eid] for eid in events["event_id"]]
        events = events.with_columns(
            version=pl.Series([orders[i].version or 0 for i in indexes], dtype=pl.Int64)
        )
        sent = fingerprints(events)
        judgement = judge(
            sent, store.fingerprints(caller.tenant_id, [(f.order_id, f.kind) for f in sent])
        )
        if judgement.conflicts:
            raise _conflict(judgement.conflicts, sent, indexes, batch="orders" in body)
        events = with_withdrawals(events, judgement.amended)
        publisher: OrderPublisher = request.app.state.publisher
        keys = [
            f"{t}:{c}".encode() for t, c in events.select("tenant_id", "customer_id").iter_rows()
        ]
        try:
            await publisher.publish(caller.tenant_id, keys, order_event_payloads(events))
        except MessageTooLarge as exc:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                detail={"field": "body", "problem": f"{exc}; send fewer lines per order"},
            ) from None
        except BrokerUnavailable as exc:
            # Some events may have reached the broker before it stopped answering.
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail={
                    "field": None,
                    "problem": f"{exc}; not confirmed; retry with the same order ids, "
                    "duplicates are ignored",
                },
                headers={"Retry-After": "5"},
            ) from None
        store.save_fingerprints(caller.tenant_id, sent, amend=True)
    metrics.count_rows(caller.tenant_id, result.accepted_rows, result.rejected_by_reason)
    results = [
        OrderResult(
            index=outcome.index,
            order_id=outcome.order_id,
            status="accepted" if outcome.accepted else "rejected",
            event_ids=outcome.event_ids,
            problems=[
                Problem(
                    code=reject.reason,
                    field=_field_path(reject.field, reject.line),
                )
                for reject in outcome.rejected_lines
            ],
        )
        for outcome in result.outcomes
    ]
    accepted = sum(r.status == "accepted" for r in results)
    return OrdersResponse(accepted=accepted, rejected=len(results) - accepted, results=results)


def _conflict(
    conflicts: dict[int, list[str]], sent: list[Fingerprint], indexes: list[int], batch: bool
) -> HTTPException:
    """409 naming, per conflicting order, the fields that differ from what was sent before."""
    listed = [
        {
            "index": indexes[row],
            "order_id": sent[row].order_id,
            "kind": sent[row].kind,
            "differs": differs,
        }
        for row, differs in sorted(conflicts.items())
    ]
    first = listed[0]
    prefix = f"orders.{first['index']}." if batch else ""
    return HTTPException(
        status.HTTP_409_CONFLICT,
        detail={
            "field": prefix + first["differs"][0],
            "problem": f"order {first['order_id']} ({first['kind']}) was sent before with other "
            f"{', '.join(first['differs'])}; send it with a higher version to amend it. "
            "Nothing was published.",
            "conflicts": listed,
        },
    )


def _field_path(field: str | None, line: int) -> str:
    if field in ORDER_LEVEL:
        return field
    return f"lines.{line}" if field is None else f"lines.{line}.{field}"
