"""Canonical orders: the JSON body of `POST /v1/orders`, whether it comes over HTTP or as an
`orders.raw` record.

One shape (`OrderIn`), one cleaning plan (the identity mapping, ISO dates, the tenant's timezone,
the bounds of settings) and one judgement of orders sent before (`prepare_orders`), so an order
sent either way is accepted or rejected for the same reasons and becomes the same event; only
the event's `source` says which way it came. Over HTTP a shape problem is a 422 naming the
field; on `orders.raw` it is an `invalid_order` reject naming the same field (`read_order`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import polars as pl
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

from retention_ingest.amendments import Fingerprint, fingerprints, judge, with_withdrawals
from retention_ingest.bounds import OrderBounds
from retention_ingest.cleaning import CleaningPlan
from retention_ingest.dates import DateFormat
from retention_ingest.records import (
    CANONICAL_MAPPING,
    ORDER_LEVEL,
    RecordsResult,
    as_text,
    clean_records,
    flatten_record,
)
from retention_ingest.store import IngestStore
from retention_shared.config import Settings
from retention_shared.events import RejectReason
from retention_shared.safe_text import id_problem

__all__ = [
    "INVALID_ORDER",
    "CanonicalOrders",
    "LineIn",
    "OrderIn",
    "OrdersBatch",
    "canonical_plan",
    "field_path",
    "looks_canonical",
    "prepare_orders",
    "read_order",
]

# The reject code of an `orders.raw` record in the canonical shape that HTTP answers with 422.
INVALID_ORDER = "invalid_order"
# Top-level names that make an `orders.raw` record a canonical order rather than a tenant's own
# columns (no public layout uses them); `orders` is a batch body, which a record may not be.
_CANONICAL_KEYS = ("order_id", "customer_id", "order_datetime", "orders")


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


def canonical_plan(
    settings: Settings, saved_timezone: str | None, received_at: datetime
) -> CleaningPlan:
    """How canonical orders are cleaned: ISO dates, naive ones in the tenant's saved timezone."""
    return CleaningPlan(
        CANONICAL_MAPPING,
        DateFormat.iso(),
        saved_timezone or settings.default_timezone,
        bounds=OrderBounds.from_settings(settings),
        received_at=received_at,
    )


@dataclass
class CanonicalOrders:
    """Orders cleaned and judged against what was sent before, ready to publish.

    `events` carry each order's version and, for an amendment naming another customer, the
    withdrawal from the earlier one; `sent` is one fingerprint per cleaned event (not the
    withdrawals), `indexes` the order each came from. With `conflicts` (event row -> the fields
    that differ from the order sent before at a version not lower) nothing may be published.
    """

    result: RecordsResult
    events: pl.DataFrame
    sent: list[Fingerprint]
    indexes: list[int]
    conflicts: dict[int, list[str]]


def prepare_orders(
    orders: Sequence[OrderIn],
    plan: CleaningPlan,
    *,
    tenant_id: str,
    source: str,
    store: IngestStore,
) -> CanonicalOrders:
    records = [flatten_record(order.model_dump(exclude={"version"})) for order in orders]
    result = clean_records(
        records,
        plan,
        tenant_id=tenant_id,
        source=source,
        order_ids=[None if o.order_id is None else as_text(o.order_id) for o in orders],
    )
    events = result.events
    if not events.height:
        return CanonicalOrders(result, events, [], [], {})
    index_of = {eid: o.index for o in result.outcomes for eid in o.event_ids}
    indexes = [index_of[eid] for eid in events["event_id"]]
    events = events.with_columns(
        version=pl.Series([orders[i].version or 0 for i in indexes], dtype=pl.Int64)
    )
    sent = fingerprints(events)
    judgement = judge(sent, store.fingerprints(tenant_id, [(f.order_id, f.kind) for f in sent]))
    if not judgement.conflicts:
        events = with_withdrawals(events, judgement.amended)
    return CanonicalOrders(result, events, sent, indexes, judgement.conflicts)


def field_path(field: str | None, line: int) -> str:
    """Where in a canonical order a rejected line's problem is: `customer_id`, `lines.1.quantity`."""
    if field in ORDER_LEVEL:
        return field
    return f"lines.{line}" if field is None else f"lines.{line}.{field}"


def looks_canonical(record: Mapping[str, Any]) -> bool:
    """Whether an `orders.raw` record names canonical fields (so it is read as `OrderIn`)."""
    return any(key in record for key in _CANONICAL_KEYS)


def read_order(record: Mapping[str, Any]) -> OrderIn | list[RejectReason]:
    """The record as an `OrderIn`, or why not: one `invalid_order` reason per field at fault,
    the field and problem HTTP's 422 would name."""
    if "orders" in record:
        return [
            RejectReason(
                code=INVALID_ORDER,
                field="orders",
                message="a record is one order: send each order of a batch as its own record",
            )
        ]
    try:
        return OrderIn.model_validate(record)
    except ValidationError as error:
        return [
            RejectReason(
                code=INVALID_ORDER,
                field=".".join(str(part) for part in problem["loc"]) or None,
                message=problem["msg"],
            )
            for problem in error.errors()
        ]
