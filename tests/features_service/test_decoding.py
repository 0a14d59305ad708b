"""The features service's quick `transactions` decoding decides exactly as `OrderEvent` does.

Its plain-form check may only accept what the model accepts, with the same values; everything
else goes through `decode_event`, so rejects keep their reason codes. Real ingest payloads and
many mutations of them (wrong types, limits, timestamps, versions) are run through both.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from retention_features.decoding import (
    DecodedOrder,
    _plain_order,
    decode_orders,
    from_event,
    products_json,
)
from retention_shared.events import EventDecodeError, OrderEvent, decode_event
from tests.real_orders import order_stream
from tests.uci_orders import TEST_DATA

Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    stream = order_stream(
        TEST_DATA / "online_retail_II_slice.parquet", tmp_path_factory.mktemp("ingest")
    )
    return [payload for _, payload in stream.records]


def the_model_decides(payload: bytes) -> DecodedOrder | tuple[str, str | None, str]:
    try:
        return from_event(decode_event(OrderEvent, payload))
    except EventDecodeError as error:
        return (error.code, error.field, error.message)
    except OverflowError as error:  # the model's own failure: rejected, never raised
        return ("invalid_event", None, f"OverflowError: {error}")


def test_real_payloads_take_the_quick_path_with_the_models_values(payloads: list[bytes]) -> None:
    assert len(payloads) > 1000
    for payload in payloads:
        quick = _plain_order(payload)
        assert quick is not None
        assert quick == the_model_decides(payload)


def setting(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        target = event
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def removing(path: tuple[Any, ...]) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        target = event
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


VALUES: dict[tuple[Any, ...], list[Any]] = {
    ("schema_version",): [2, 0, "1", 1.0, None, True],
    ("event_type",): ["OrderEvent", "CustomerFeatures", 5, None],
    ("customer_id",): ["", "x" * 256, "x" * 257, "é" * 256, 17850, None, " "],
    ("tenant_id",): ["", "t" * 257, 1],
    ("order_id",): ["", 536365, "C536365"],
    ("event_id",): ["", None],
    ("source",): ["", 3],
    ("occurred_at",): [
        "2010-12-01T08:26:00Z",
        "2010-12-01T08:26:00.5+01:00",
        "2010-12-01T08:26:00.123456-05:30",
        "2010-12-01T08:26:00.1234567Z",
        "2010-12-01T08:26:00",
        "2010-02-30T08:26:00Z",
        "2010-12-01 08:26:00Z",
        "2010-12-01t08:26:00z",
        "2010-12-01T08:26:00+14:00",
        "2010-12-01T08:26:00+15:00",
        "2010-12-01T08:26:00-23:59",
        "2010-12-01T24:00:00Z",
        "2010-12-01T08:26:60Z",
        "2010-12-01T08:26Z",
        "20101201T082600Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999-14:00",
        1291191960,
        "1291191960",
        None,
    ],
    ("kind",): ["cancellation", "Purchase", "refund", 1, None],
    ("total",): ["12.5", 7, -3, 10**20, 10**400, 1e308, True, None],
    ("currency",): ["GBP", None, 5, ["GBP"]],
    ("country",): ["UK", None, 1.5],
    ("lines",): [[], None, "x", [1], [{}], [None]],
    ("lines", 0, "product_id"): ["", "p" * 256, "p" * 257, 85123, None, 'a"b', "a\\b", "é"],
    ("lines", 0, "quantity"): ["3", True, None, 3, -2, 0, 0.5, 10**30, 2**63, -(2**63)],
    ("lines", 0, "unit_price"): [0, 0.0, -1.0, "1.5", 5, 1e-300, True, None, 2**70],
    ("extra",): [{"nested": [1, 2]}],
}
MUTATIONS: list[tuple[str, Mutation]] = [
    (f"{'.'.join(map(str, path))}={value!r}"[:80], setting(path, value))
    for path, values in VALUES.items()
    for value in values
] + [
    (f"without {'.'.join(map(str, path))}", removing(path))
    for path in [*VALUES, ("lines", 0, "quantity")]
    if path != ("extra",)
]
RAW = [b"{", b"\xff\xfe", b"[]", b'"text"', b"5", b"null", b"", b'{"total": NaN}']


@pytest.mark.parametrize(("name", "mutate"), MUTATIONS, ids=[name for name, _ in MUTATIONS])
def test_a_mutated_payload_is_decided_as_the_model_decides(
    payloads: list[bytes], name: str, mutate: Mutation
) -> None:
    event = json.loads(payloads[0])
    mutate(event)
    payload = json.dumps(event).encode()
    expected = the_model_decides(payload)
    quick = _plain_order(payload)
    if quick is not None:  # the quick path only accepts what the model accepts, as it does
        assert quick == expected
    (decoded,) = decode_orders([payload])
    if isinstance(decoded, EventDecodeError):
        assert (decoded.code, decoded.field, decoded.message) == expected
    else:
        assert decoded == expected


def test_raw_payloads_that_are_not_events_are_rejected_with_the_models_reasons() -> None:
    decoded = decode_orders(RAW)
    for payload, result in zip(RAW, decoded, strict=True):
        assert isinstance(result, EventDecodeError)
        assert (result.code, result.field, result.message) == the_model_decides(payload)


def test_a_nan_total_is_left_to_the_model(payloads: list[bytes]) -> None:
    text = payloads[0].decode()
    event = json.loads(text)
    payload = text.replace(json.dumps(event["total"]), "NaN", 1).encode()
    assert _plain_order(payload) is None
    (decoded,) = decode_orders([payload])
    expected = the_model_decides(payload)
    if isinstance(decoded, EventDecodeError):
        assert (decoded.code, decoded.field, decoded.message) == expected
    else:  # the model reads NaN as a float: compare what it can be compared on
        assert (
            isinstance(expected, DecodedOrder) and decoded.order.order_id == expected.order.order_id
        )


@pytest.mark.parametrize(
    "products", [["85123A", "POST"], ['a"b'], ["a\\b"], ["é"], ["tab\there"], ["x\n"], []]
)
def test_products_are_stored_as_json_dumps_writes_them(products: list[str]) -> None:
    assert products_json(products) == json.dumps(products)


def test_a_batch_mixes_both_paths_in_record_order(payloads: list[bytes]) -> None:
    odd = copy.deepcopy(json.loads(payloads[1]))
    odd["lines"][0]["quantity"] = "2"  # valid for the model (a numeric string), not plain
    batch = [payloads[0], json.dumps(odd).encode(), b"{", payloads[2]]
    decoded = decode_orders(batch)
    assert [type(d) for d in decoded] == [
        DecodedOrder,
        DecodedOrder,
        EventDecodeError,
        DecodedOrder,
    ]
    assert decoded == [the_model_decides(p) if i != 2 else decoded[2] for i, p in enumerate(batch)]
