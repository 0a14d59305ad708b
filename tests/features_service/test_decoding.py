"""The features service's `transactions` decoding: the model decides, the values are the orders'.

Real ingest payloads decode to the same order rows as the feature definition's own orders frame
of the same events; bad records come back as the model's rejects, in record order, never raised.
"""

from __future__ import annotations

import json

import pytest

from retention_features.decoding import DecodedOrder, decode_orders, products_json
from retention_shared.events import EventDecodeError, OrderEvent, decode_event
from retention_shared.features.running import running_orders
from tests.real_orders import OrderStream, order_stream
from tests.uci_orders import TEST_DATA

RAW = [b"{", b"\xff\xfe", b"[]", b'"text"', b"5", b"null", b"", b'{"total": NaN}']


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> OrderStream:
    return order_stream(
        TEST_DATA / "online_retail_II_slice.parquet", tmp_path_factory.mktemp("ingest")
    )


def test_real_payloads_decode_to_the_orders_frame_rows(stream: OrderStream) -> None:
    decoded = decode_orders([payload for _, payload in stream.records])
    assert len(decoded) > 1000 and all(isinstance(d, DecodedOrder) for d in decoded)
    got = sorted(
        (d.tenant_id, d.customer_id, *d.order[:5], list(d.order.products))
        for d in decoded
        if isinstance(d, DecodedOrder)
    )
    expected = sorted(
        (t, c, *order[:5], sorted(order.products)) for t, c, order in running_orders(stream.orders)
    )
    assert got == expected


def test_bad_records_are_the_models_rejects_in_record_order(stream: OrderStream) -> None:
    good = stream.records[0][1]
    event = json.loads(good)
    event["lines"][0]["unit_price"] = 0
    batch = [good, b"{", json.dumps(event).encode(), *RAW, good]
    decoded = decode_orders(batch)
    assert isinstance(decoded[0], DecodedOrder) and decoded[-1] == decoded[0]
    for payload, result in zip(batch[1:-1], decoded[1:-1], strict=True):
        assert isinstance(result, EventDecodeError)
        with pytest.raises(EventDecodeError) as model:
            decode_event(OrderEvent, payload)
        assert (result.code, result.field) == (model.value.code, model.value.field)
    assert decoded[2].field == "lines.0.unit_price"


def test_a_timestamp_beyond_the_utc_range_is_rejected_not_raised(stream: OrderStream) -> None:
    event = json.loads(stream.records[0][1])
    event["occurred_at"] = "9999-12-31T23:00:00-05:00"
    (decoded,) = decode_orders([json.dumps(event).encode()])
    assert isinstance(decoded, EventDecodeError) and decoded.code == "invalid_event"


@pytest.mark.parametrize(
    "products", [["85123A", "POST"], ['a"b'], ["a\\b"], ["é"], ["tab\there"], ["x\n"], []]
)
def test_products_are_stored_as_json_dumps_writes_them(products: list[str]) -> None:
    assert products_json(products) == json.dumps(products)
