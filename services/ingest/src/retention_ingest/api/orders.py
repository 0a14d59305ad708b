"""`POST /v1/orders`: one canonical order or a batch, answered after the broker acknowledged.

The body's shape is checked here (422 naming the field); the values go through the same cleaning
as files, so each order comes back accepted (with its event ids, and any line dropped with its
reason) or rejected with reason codes and the offending field. An order sent before with other
content needs a higher `version` (`amendments`); without one the request answers 409 naming the
fields that differ, and nothing is published. The shape, the cleaning plan and that judgement
live in `canonical`, which `orders.raw` uses for records in this shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, WithJsonSchema

from retention_ingest import telemetry
from retention_ingest.amendments import Fingerprint
from retention_ingest.api.deps import Publisher, SettingsDep, Store
from retention_ingest.bounds import utc_now
from retention_ingest.canonical import (
    OrderIn,
    OrdersBatch,
    canonical_plan,
    field_path,
    prepare_orders,
)
from retention_ingest.order_events import order_event_payloads
from retention_ingest.publishers.transactions import (
    BrokerUnavailable,
    MessageTooLarge,
)
from retention_shared.auth import IngestCaller
from retention_shared.openapi_docs import inline_schema
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["orders"])


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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 1,
                    "rejected": 1,
                    "results": [
                        {
                            "index": 0,
                            "order_id": "581502",
                            "status": "accepted",
                            "event_ids": ["default:581502:0"],
                            "problems": [],
                        },
                        {
                            "index": 1,
                            "order_id": "581503",
                            "status": "rejected",
                            "event_ids": [],
                            "problems": [{"code": "invalid_quantity", "field": "lines.0.quantity"}],
                        },
                    ],
                }
            ]
        }
    )

    accepted: int
    rejected: int
    results: list[OrderResult]


_ORDER = {
    "order_id": "581502",
    "customer_id": "14646",
    "order_datetime": "2011-12-09T09:15:00",
    "currency": "GBP",
    "country": "Netherlands",
    "lines": [{"product_id": "22720", "quantity": 12, "unit_price": 4.95}],
}
# The body is read as JSON here and validated below against `OrderIn` or `OrdersBatch` (so a
# batch's errors name `orders.<i>.<field>`); the document says what those models accept.
OrderBody = Annotated[
    dict[str, Any],
    Body(
        description='One order, or `{"orders": [...]}`.',
        openapi_examples={
            "one order": {"value": _ORDER},
            "a batch": {"value": {"orders": [_ORDER, _ORDER | {"order_id": "581503"}]}},
            "an amendment": {"value": _ORDER | {"version": 1}},
        },
    ),
    WithJsonSchema(inline_schema(OrderIn | OrdersBatch)),
]


@router.post("/orders", responses=problem_responses(401, 403, 409, 413, 422, 503))
async def post_orders(
    caller: IngestCaller,
    body: OrderBody,
    store: Store,
    publisher: Publisher,
    settings: SettingsDep,
) -> OrdersResponse:
    """Send one order or a batch; answered once the broker acknowledged every event. Each order
    comes back accepted (its event ids; any line dropped with its reason) or rejected with
    reason codes naming the field. An order sent before with other content needs a higher
    `version` (409 naming the fields that differ otherwise; nothing is published). More than
    `RETENTION_MAX_ORDERS_PER_REQUEST` orders is a 413."""
    limit = settings.max_orders_per_request
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

    _, saved_timezone = store.mapping(caller.tenant_id)
    prepared = prepare_orders(
        orders,
        canonical_plan(settings, saved_timezone, utc_now()),
        tenant_id=caller.tenant_id,
        source="http",
        store=store,
    )
    result, events = prepared.result, prepared.events
    if events.height:
        if prepared.conflicts:
            raise _conflict(
                prepared.conflicts, prepared.sent, prepared.indexes, batch="orders" in body
            )
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
        store.save_fingerprints(caller.tenant_id, prepared.sent, amend=True)
    telemetry.count_rows(caller.tenant_id, result.accepted_rows, result.rejected_by_reason)
    results = [
        OrderResult(
            index=outcome.index,
            order_id=outcome.order_id,
            status="accepted" if outcome.accepted else "rejected",
            event_ids=outcome.event_ids,
            problems=[
                Problem(
                    code=reject.reason,
                    field=field_path(reject.field, reject.line),
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
