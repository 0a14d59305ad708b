"""A compiled, strict reader of the `OrderEvent` contract, for consumers' hot paths.

The `OrderEvent` model (`events`) decides what is accepted and every reject's reason; running it per
payload is most of a consumer's decoding. `read_order_event` reads a payload with msgspec into
structs that mirror the model's fields and constraints (~3 µs for an online_retail_II event of ~18
lines, where the model takes ~12). It is narrower than the model: what it does not take — every bad
payload, and valid ones in rarer shapes (a numeric string, another timestamp layout, NaN, a 7th
fractional digit) — it returns as None, for the model to decide. So what is accepted, with which
values, and every reject stay the model's; the features service's tests run both on real payloads
and on mutations of them, and compare these structs' fields with the models'.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

from retention_shared.events import MAX_EVENT_AMOUNT, OrderKind
from retention_shared.safe_text import ID_PATTERN, MAX_ID_LENGTH

__all__ = ["OrderEventStruct", "OrderLineStruct", "read_order_event"]

# The model's fields and constraints, mirrored (a test compares names and defaults with the
# models'). msgspec's strict mode takes each JSON value only in its own type, where the model's lax
# mode also coerces (a numeric string, 1.0 for an int, true for a float): those are the model's.

_IdStr = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
# msgspec reads no inf or NaN from JSON, so bounds alone keep amounts finite.
_Amount = Annotated[float, msgspec.Meta(ge=-MAX_EVENT_AMOUNT, le=MAX_EVENT_AMOUNT)]
# The one timestamp layout read here, with an offset (the model rejects naive times). Not msgspec's
# datetime: it rounds digits past the 6th where the model truncates them, and stops at a NUL.
_Timestamp = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
        r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
    ),
]


# gc=False: decoded structs never take part in a reference cycle, so the collector need not track
# them (a struct per order line).
class _EventStruct(msgspec.Struct, kw_only=True, gc=False):
    # decode_event rejects any other version as `unsupported_schema_version`.
    schema_version: Literal[1] = 1


class OrderLineStruct(msgspec.Struct, gc=False):
    product_id: _IdStr
    quantity: _Amount
    unit_price: Annotated[float, msgspec.Meta(gt=0, le=MAX_EVENT_AMOUNT)]


class OrderEventStruct(_EventStruct, kw_only=True, gc=False):
    event_type: Literal["OrderEvent"] = "OrderEvent"
    event_id: _IdStr
    tenant_id: _IdStr
    order_id: _IdStr
    customer_id: _IdStr
    occurred_at: _Timestamp
    kind: OrderKind
    lines: Annotated[list[OrderLineStruct], msgspec.Meta(min_length=1)]
    total: _Amount
    currency: str | None = None
    country: str | None = None
    source: _IdStr
    version: Annotated[int, msgspec.Meta(ge=0, le=2**53)] = 0
    withdrawn: bool = False


_decoder = msgspec.json.Decoder(OrderEventStruct)
# Past these, pydantic's JSON parser gives up and decode_event re-reads the payload with json.loads,
# whose limits are not msgspec's: it rejects the long integer (Python's default int_max_str_digits)
# and nesting near the interpreter's recursion limit, both of which msgspec reads. Such payloads
# are the model's.
_MAX_DEPTH = 200
_MAX_DIGITS = 4300
_LONG_INTEGER = re.compile(rb"[0-9]{%d}" % (_MAX_DIGITS + 1))


def read_order_event(payload: bytes) -> tuple[OrderEventStruct, datetime] | None:
    """The event and its `occurred_at` in UTC if this reader takes the payload, else None (the
    model decides)."""
    try:
        event = _decoder.decode(payload)
        # As the model's UtcDatetime: a time its offset moves out of range is a reject.
        occurred_at = datetime.fromisoformat(event.occurred_at).astimezone(UTC)
    except (ValueError, OverflowError, RecursionError):  # msgspec's errors are ValueErrors
        return None
    # The structs nest 3 deep with len(lines) + 2 brackets; any more are in ignored fields (or in
    # strings), and past _MAX_DEPTH of them may nest past pydantic's parser.
    openings = payload.count(b"{") + payload.count(b"[")
    if openings > _MAX_DEPTH and openings != len(event.lines) + 2:
        return None
    if len(payload) > _MAX_DIGITS and _LONG_INTEGER.search(payload):
        return None
    return event, occurred_at
