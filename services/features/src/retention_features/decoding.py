"""`transactions` payloads → the order rows the store and the running totals take, quickly.

Building an `OrderEvent` (and a model per line) was the largest cost per event. Here each
payload is parsed to plain Python values (pydantic-core's JSON parser) and checked by
`_plain_order`, which accepts only payloads `OrderEvent` certainly accepts with the same values:
the fields in their plain JSON types (no coercions), identifiers within their length limits, a
UTC-offset timestamp in the one layout below. Anything else — a bad payload, but also a valid one
in a rarer shape (a numeric string, an unusual offset) — is decoded by `decode_event`, so what is
accepted, and every reject with its reason code, is exactly what the model decides. A test feeds
both paths mutated payloads and compares them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from pydantic_core import from_json

from retention_features.store import to_microseconds
from retention_shared.events import (
    SCHEMA_VERSION,
    EventDecodeError,
    OrderEvent,
    OrderKind,
    decode_event,
)
from retention_shared.features.running import RunningOrder

_KINDS = frozenset(kind.value for kind in OrderKind)
_MAX_ID = 256  # NonEmptyStr
# Integers a JSON number may be for a float field here (pydantic converts these exactly enough).
_INT_MIN, _INT_MAX = -(2**63), 2**63
_IDS = ("event_id", "tenant_id", "order_id", "customer_id", "source")
_OPTIONAL_TEXT = ("currency", "country")
# Years an offset can carry out of datetime's range (the model fails on them with its own error).
_EDGE_YEARS = ("0001", "9999")
# ISO 8601 as ingest writes it (and close variants) with an explicit offset; datetime parses it
# to the same instant pydantic does.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)"
)


@dataclass(frozen=True, slots=True)
class DecodedOrder:
    """One accepted `OrderEvent`, reduced to what the features service keeps of it."""

    tenant_id: str
    customer_id: str
    order: RunningOrder

    def row(self, offset: int) -> tuple[object, ...]:
        """The store's `orders` row (products as sorted JSON text)."""
        order = self.order
        return (
            self.tenant_id,
            self.customer_id,
            order.order_id,
            order.kind,
            order.occurred_at_us,
            order.total,
            order.items,
            products_json(order.products),
            offset,
        )


def products_json(products: list[str]) -> str:
    """`json.dumps(products)`, without the encoder for ids it would not escape (the usual ones)."""
    joined = "".join(products)
    if joined.isascii() and joined.isprintable() and '"' not in joined and "\\" not in joined:
        return '["' + '", "'.join(products) + '"]' if products else "[]"
    return json.dumps(products)


def decode_orders(payloads: list[bytes]) -> list[DecodedOrder | EventDecodeError]:
    """Each payload as a `DecodedOrder`, or the `EventDecodeError` `decode_event` raises for it.

    A payload the model fails on with an error of its own (not a validation error, e.g. a
    timestamp whose UTC conversion overflows) is rejected as `invalid_event` too: one record
    must not stop the partition.
    """
    decoded: list[DecodedOrder | EventDecodeError] = []
    for payload in payloads:
        order = _plain_order(payload)
        if order is None:
            try:
                order = from_event(decode_event(OrderEvent, payload))
            except EventDecodeError as error:
                decoded.append(error)
                continue
            except (ArithmeticError, ValueError) as error:
                decoded.append(
                    EventDecodeError("invalid_event", f"{type(error).__name__}: {error}")
                )
                continue
        decoded.append(order)
    return decoded


def from_event(event: OrderEvent) -> DecodedOrder:
    quantities = [line.quantity for line in event.lines]
    return DecodedOrder(
        event.tenant_id,
        event.customer_id,
        RunningOrder(
            occurred_at_us=to_microseconds(event.occurred_at),
            kind=event.kind.value,
            order_id=event.order_id,
            total=event.total,
            # As the model's values give it: |quantity| summed in line order.
            items=_items(quantities),
            products=sorted({line.product_id for line in event.lines}),
        ),
    )


def _items(quantities: list[float]) -> float:
    """|quantity| summed in line order (one loop for both paths: `sum` of floats is compensated
    on newer Pythons)."""
    items = 0.0
    for quantity in quantities:
        items += abs(quantity)
    return items


def _number(value: object) -> bool:
    kind = type(value)
    return kind is float or (kind is int and _INT_MIN <= value < _INT_MAX)  # type: ignore[operator]


def _identifier(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= _MAX_ID


def _plain_order(payload: bytes) -> DecodedOrder | None:
    """The order if the payload is certainly a valid `OrderEvent` in plain form, else None."""
    try:
        data = from_json(payload, allow_inf_nan=False)
    except ValueError:
        return None
    if type(data) is not dict:
        return None
    get = data.get
    version = get("schema_version", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        return None
    if get("event_type", "OrderEvent") != "OrderEvent":
        return None
    for name in _IDS:
        value = get(name)
        if type(value) is not str or not 0 < len(value) <= _MAX_ID:
            return None
    for name in _OPTIONAL_TEXT:
        value = get(name)
        if value is not None and type(value) is not str:
            return None
    kind, total, lines = get("kind"), get("total"), get("lines")
    if type(kind) is not str or kind not in _KINDS or not _number(total):
        return None
    occurred = get("occurred_at")
    if type(occurred) is not str or _TIMESTAMP.fullmatch(occurred) is None:
        return None
    if occurred.startswith(_EDGE_YEARS):
        return None
    try:
        moment = datetime.fromisoformat(occurred)
    except ValueError:
        return None
    if type(lines) is not list or not lines:
        return None
    quantities, products = [], set()
    for line in lines:
        if type(line) is not dict:
            return None
        get = line.get
        product, quantity, price = get("product_id"), get("quantity"), get("unit_price")
        # The usual line in one test: an id and two floats, the price positive.
        if not (
            type(quantity) is float
            and type(price) is float
            and price > 0
            and type(product) is str
            and 0 < len(product) <= _MAX_ID
        ) and not (_identifier(product) and _number(quantity) and _number(price) and price > 0):
            return None
        quantities.append(float(quantity))
        products.add(product)
    return DecodedOrder(
        data["tenant_id"],
        data["customer_id"],
        RunningOrder(
            occurred_at_us=to_microseconds(moment),
            kind=kind,
            order_id=data["order_id"],
            total=float(total),
            items=_items(quantities),
            products=sorted(products),
        ),
    )
