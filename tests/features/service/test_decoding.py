"""The features service's `transactions` decoding: the model decides, the values are the orders'.

Real ingest payloads decode to the same order rows as the feature definition's own orders frame
of the same events; bad records come back as the model's rejects, in record order, never raised.
The compiled decoder in front of the model is held to it: on real payloads it decodes every one,
to the model's values bit for bit; on mutations of them (every constraint broken, every coercion
the model allows, odd JSON) it either gives the model's values or leaves the payload to the model,
and each mutation states which.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from retention_features import decoding
from retention_features.decoding import (
    DecodedOrder,
    _decode_with_model,
    _reduce,
    decode_orders,
    products_json,
)
from retention_shared.events import EventDecodeError, OrderEvent, OrderLine, decode_event
from retention_shared.features.running import running_orders
from retention_shared.order_decoder import OrderEventStruct, OrderLineStruct, read_order_event
from tests.support.real_orders import ONLINE_RETAIL, OrderStream, order_stream
from tests.support.uci_orders import TEST_DATA

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


# --- the compiled decoder against the model ----------------------------------------------------


def shown(result: DecodedOrder | EventDecodeError | None) -> object:
    """What a decoding says, compared exactly: floats by repr (so -0.0, inf and nan count)."""
    if isinstance(result, EventDecodeError):
        return (result.code, result.field, result.message)
    return repr(result)


def decode_fast(payload: bytes) -> DecodedOrder | None:
    """The compiled reader's order, reduced as `decode_orders` does; None if it leaves it."""
    read = read_order_event(payload)
    return None if read is None else _reduce(*read)


def assert_decided_as_the_model_decides(payloads: list[bytes]) -> None:
    for payload in payloads:
        fast = decode_fast(payload)
        assert fast is not None, payload[:200]
        assert shown(fast) == shown(_decode_with_model(payload))


def test_real_payloads_take_the_fast_path_with_the_models_values(stream: OrderStream) -> None:
    assert_decided_as_the_model_decides([payload for _, payload in stream.records])


@pytest.mark.slow
def test_all_bundled_orders_take_the_fast_path_with_the_models_values(tmp_path: Path) -> None:
    whole = order_stream(ONLINE_RETAIL, tmp_path)
    assert len(whole.records) > 20_000
    assert_decided_as_the_model_decides([payload for _, payload in whole.records])


def test_only_what_the_compiled_decoder_leaves_reaches_the_model(
    stream: OrderStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [payload for _, payload in stream.records[:50]]
    coerced = json.loads(good[1])
    coerced["lines"][0]["quantity"] = str(coerced["lines"][0]["quantity"])  # the model's lax mode
    odd = json.dumps(coerced).encode()
    model = _decode_with_model
    reached: list[bytes] = []

    def counted(payload: bytes) -> DecodedOrder | EventDecodeError:
        reached.append(payload)
        return model(payload)

    monkeypatch.setattr(decoding, "_decode_with_model", counted)
    decoded = decode_orders([*good, odd, b"{", good[0]])
    assert reached == [odd, b"{"]
    assert isinstance(decoded[len(good)], DecodedOrder) and decoded[-1] == decoded[0]
    assert [shown(d) for d in decoded] == [shown(model(p)) for p in [*good, odd, b"{", good[0]]]


@pytest.mark.parametrize(
    ("struct", "model"), [(OrderEventStruct, OrderEvent), (OrderLineStruct, OrderLine)]
)
def test_the_compiled_decoders_structs_have_the_models_fields(struct: type, model: type) -> None:
    """A new or changed model field fails here first: the struct must follow it."""
    fields = {field.name: field for field in msgspec.structs.fields(struct)}
    assert fields.keys() == model.model_fields.keys()
    for name, field in model.model_fields.items():
        assert fields[name].required == field.is_required(), name
        if not field.is_required():
            assert fields[name].default == field.default, name


# How each mutated payload is decided: by the compiled decoder (FAST), or left to the model, which
# accepts it (MODEL: a coercion or a layout the decoder does not read) or rejects it (REJECT).
FAST, MODEL, REJECT = "fast", "model", "reject"
Mutation = Callable[[dict[str, Any]], bytes]


def setting(path: str, value: Any) -> Mutation:
    def mutate(event: dict[str, Any]) -> bytes:
        *parents, name = [int(step) if step.isdigit() else step for step in path.split(".")]
        target = event
        for step in parents:
            target = target[step]
        target[name] = value
        return json.dumps(event).encode()

    return mutate


def removing(path: str) -> Mutation:
    def mutate(event: dict[str, Any]) -> bytes:
        *parents, name = [int(step) if step.isdigit() else step for step in path.split(".")]
        target = event
        for step in parents:
            target = target[step]
        del target[name]
        return json.dumps(event).encode()

    return mutate


def text(edit: Callable[[str], str]) -> Mutation:
    """An edit of the JSON text itself, for what json.dumps does not write."""
    return lambda event: edit(json.dumps(event)).encode()


def raw(payload: bytes) -> Mutation:
    return lambda event: payload


def literal(field: str, value_text: str) -> Mutation:
    """The first `field` set to `value_text` as written (its old value kept under another key)."""
    return text(lambda body: body.replace(f'"{field}": ', f'"{field}": {value_text}, "was": ', 1))


def with_extra(value_text: str) -> Mutation:
    return text(lambda body: body[:-1] + f', "extra": {value_text}}}')


def big_order(lines: int) -> Mutation:
    def mutate(event: dict[str, Any]) -> bytes:
        line = event["lines"][0]
        event["lines"] = [dict(line, product_id=f"P{i}") for i in range(lines)]
        return json.dumps(event).encode()

    return mutate


IDS = ["event_id", "tenant_id", "order_id", "customer_id", "source", "lines.0.product_id"]
STAMP = "2010-12-01T08:26:00"
CASES: list[tuple[str, Mutation, str]] = [
    # identifiers: IdStr, 1..256 printable characters (code points, not bytes)
    *(
        (f"{field}={label}", setting(field, value), verdict)
        for field in IDS
        for label, value, verdict in [
            ("empty", "", REJECT),
            ("256 chars", "x" * 256, FAST),
            ("257 chars", "x" * 257, REJECT),
            ("256 é", "é" * 256, FAST),
            ("256 emoji", "\U0001f600" * 256, FAST),
            ("257 emoji", "\U0001f600" * 257, REJECT),
            ("space", " ", FAST),
            ("quote backslash", 'a"b\\c', FAST),
            ("NUL", "a\x00b", REJECT),
            ("ESC", "a\x1bb", REJECT),
            ("right-to-left override", "a\u202eb", REJECT),
            ("C1 control", "a\x85b", REJECT),
            ("=formula", "=cmd|' /C calc'!A0", FAST),
            ("int", 17850, REJECT),
            ("null", None, REJECT),
        ]
    ),
    *((f"without {field}", removing(field), REJECT) for field in IDS),
    # Literal event_type and the schema version (decode_event rejects any but 1)
    ("event_type=OrderEvent", setting("event_type", "OrderEvent"), FAST),
    ("event_type=CustomerFeatures", setting("event_type", "CustomerFeatures"), REJECT),
    ("event_type=5", setting("event_type", 5), REJECT),
    ("event_type=null", setting("event_type", None), REJECT),
    ("without event_type", removing("event_type"), FAST),
    ("schema_version=2", setting("schema_version", 2), REJECT),
    ("schema_version=0", setting("schema_version", 0), REJECT),
    ("schema_version=10**30", setting("schema_version", 10**30), REJECT),
    ("schema_version=null", setting("schema_version", None), REJECT),
    ("schema_version='1'", setting("schema_version", "1"), MODEL),
    ("schema_version=1.0", setting("schema_version", 1.0), MODEL),
    ("schema_version=true", setting("schema_version", True), MODEL),
    ("without schema_version", removing("schema_version"), FAST),
    # OrderKind
    ("kind=cancellation", setting("kind", "cancellation"), FAST),
    ("kind=Purchase", setting("kind", "Purchase"), REJECT),
    ("kind=refund", setting("kind", "refund"), REJECT),
    ("kind=1", setting("kind", 1), REJECT),
    ("kind=null", setting("kind", None), REJECT),
    ("without kind", removing("kind"), REJECT),
    # floats: ints are floats to both; numeric strings and booleans only to the model's lax mode
    ("total=7", setting("total", 7), FAST),
    ("total=-0.0", setting("total", -0.0), FAST),
    # amounts: finite and within ±MAX_EVENT_AMOUNT (1e12)
    ("total=10**12", setting("total", 10**12), FAST),
    ("total=-(10**12)", setting("total", -(10**12)), FAST),
    ("total=10**12+1", setting("total", 10**12 + 1), REJECT),
    ("total=2**64+1", setting("total", 2**64 + 1), REJECT),
    ("total=1e308", setting("total", 1e308), REJECT),
    ("total=-1e308", setting("total", -1e308), REJECT),
    ("total=10**400", setting("total", 10**400), REJECT),  # inf to the model
    ("total=NaN", literal("total", "NaN"), REJECT),
    ("total='12.5'", setting("total", "12.5"), MODEL),
    ("total=true", setting("total", True), MODEL),
    ("total=null", setting("total", None), REJECT),
    ("without total", removing("total"), REJECT),
    ("quantity=3", setting("lines.0.quantity", 3), FAST),
    ("quantity=-2", setting("lines.0.quantity", -2), FAST),
    ("quantity=0", setting("lines.0.quantity", 0), FAST),
    ("quantity=0.1", setting("lines.0.quantity", 0.1), FAST),
    ("quantity=-(10**12)", setting("lines.0.quantity", -(10**12)), FAST),
    ("quantity=2**63", setting("lines.0.quantity", 2**63), REJECT),
    ("quantity=-(2**63)-1", setting("lines.0.quantity", -(2**63) - 1), REJECT),
    ("quantity=1e308", setting("lines.0.quantity", 1e308), REJECT),
    ("quantity='3'", setting("lines.0.quantity", "3"), MODEL),
    ("quantity=true", setting("lines.0.quantity", True), MODEL),
    ("quantity=null", setting("lines.0.quantity", None), REJECT),
    ("without quantity", removing("lines.0.quantity"), REJECT),
    # unit_price > 0
    ("unit_price=5", setting("lines.0.unit_price", 5), FAST),
    ("unit_price=5e-324", setting("lines.0.unit_price", 5e-324), FAST),
    ("unit_price=10**12", setting("lines.0.unit_price", 10**12), FAST),
    ("unit_price=2**70", setting("lines.0.unit_price", 2**70), REJECT),
    ("unit_price=1e308", setting("lines.0.unit_price", 1e308), REJECT),
    ("unit_price=0", setting("lines.0.unit_price", 0), REJECT),
    ("unit_price=0.0", setting("lines.0.unit_price", 0.0), REJECT),
    ("unit_price=-0.0", setting("lines.0.unit_price", -0.0), REJECT),
    ("unit_price=-1.5", setting("lines.0.unit_price", -1.5), REJECT),
    ("unit_price=1e-400", literal("unit_price", "1e-400"), REJECT),  # 0.0
    ("unit_price='1.5'", setting("lines.0.unit_price", "1.5"), MODEL),
    ("unit_price=true", setting("lines.0.unit_price", True), MODEL),
    ("unit_price=null", setting("lines.0.unit_price", None), REJECT),
    # lines: at least one, each an object
    ("lines=[]", setting("lines", []), REJECT),
    ("lines=null", setting("lines", None), REJECT),
    ("lines='x'", setting("lines", "x"), REJECT),
    ("lines=[1]", setting("lines", [1]), REJECT),
    ("lines=[{}]", setting("lines", [{}]), REJECT),
    ("lines=[null]", setting("lines", [None]), REJECT),
    ("without lines", removing("lines"), REJECT),
    ("250 lines", big_order(250), FAST),
    # optional text
    ("currency=null", setting("currency", None), FAST),
    ("without currency", removing("currency"), FAST),
    ("currency=5", setting("currency", 5), REJECT),
    ("currency=['GBP']", setting("currency", ["GBP"]), REJECT),
    ("country=1.5", setting("country", 1.5), REJECT),
    ("without country", removing("country"), FAST),
    # UtcDatetime: aware, normalised to UTC; the one layout read fast is ISO 8601 with seconds,
    # up to 6 fractional digits and an offset
    *(
        (f"occurred_at={stamp}", setting("occurred_at", stamp), verdict)
        for stamp, verdict in [
            (f"{STAMP}Z", FAST),
            (f"{STAMP}+00:00", FAST),
            (f"{STAMP}-00:00", FAST),
            (f"{STAMP}+01:00", FAST),
            (f"{STAMP}-05:30", FAST),
            (f"{STAMP}+14:00", FAST),
            (f"{STAMP}-23:59", FAST),
            *((f"{STAMP}.{'987654321'[:n]}+05:45", FAST) for n in range(1, 7)),
            *((f"{STAMP}.{'987654321'[:n]}Z", MODEL) for n in range(7, 10)),  # truncated
            (f"{STAMP}.9999999-01:00", MODEL),
            (f"{STAMP}", REJECT),  # naive
            (f"{STAMP}.5", REJECT),
            (f"{STAMP}+0100", MODEL),
            (f"{STAMP}z", MODEL),
            ("2010-12-01t08:26:00Z", MODEL),
            ("2010-12-01 08:26:00Z", MODEL),
            ("2010-12-01T08:26Z", MODEL),
            (f"{STAMP}+01", REJECT),
            (f"{STAMP}+24:00", REJECT),
            (f"{STAMP}+01:60", REJECT),
            (f"{STAMP}Z\n", REJECT),
            (f"{STAMP}\x00Z", REJECT),
            (f"{STAMP}Z\x00", REJECT),
            ("2010-02-30T08:26:00Z", REJECT),
            ("2010-12-01T24:00:00Z", REJECT),
            ("2016-12-31T23:59:60Z", REJECT),
            ("0000-01-01T00:00:00Z", REJECT),
            ("0001-01-01T00:00:00Z", FAST),
            ("0001-01-01T00:30:00+01:00", REJECT),  # before year 1 in UTC
            ("9999-12-31T23:59:59.999999Z", FAST),
            ("9999-12-31T23:59:59.999999+14:00", FAST),
            ("9999-12-31T23:00:00-05:00", REJECT),  # after year 9999 in UTC
            ("20101201T082600Z", REJECT),
            ("1291191960", MODEL),  # unix seconds
            (1291191960, MODEL),
            (1291191960.5, MODEL),
            (None, REJECT),
        ]
    ),
    ("without occurred_at", removing("occurred_at"), REJECT),
    ("occurred_at with an escaped +", text(lambda b: b.replace("+00:00", "\\u002b00:00", 1)), FAST),
    # unknown fields are ignored, but must still be JSON the model reads
    ("extra object", with_extra('{"nested": [1, 2.5, "x", null]}'), FAST),
    ("extra in a line", setting("lines.0.note", {"gift": True}), FAST),
    ("extra NaN", with_extra("NaN"), MODEL),
    ("extra 1e400", with_extra("1e400"), FAST),
    ("extra 4,300-digit integer", with_extra("9" * 4300), FAST),
    ("extra 4,301-digit integer", with_extra("9" * 4301), REJECT),  # json.loads' int limit
    ("extra 4,301-digit float", with_extra("9" * 4301 + ".5"), MODEL),
    ("extra nested 300 deep", with_extra("[" * 300 + "]" * 300), MODEL),
    ("extra nested 5,000 deep", with_extra("[" * 5000 + "]" * 5000), REJECT),  # RecursionError
    ("brackets in a string", with_extra(json.dumps("[" * 300)), MODEL),
    # duplicate keys: the last one counts, for both
    ("duplicate kind", text(lambda b: b[:-1] + ', "kind": "cancellation"}'), FAST),
    ("duplicate total, the first a string", text(lambda b: '{"total": "x", ' + b[1:]), MODEL),
    ("duplicate total, the last a string", text(lambda b: b[:-1] + ', "total": "x"}'), REJECT),
    ("an escaped key", text(lambda b: b.replace('"kind"', '"\\u006bind"', 1)), FAST),
    # NaN and Infinity are not JSON; the model reads them, and rejects them as amounts
    ("total=-Infinity", literal("total", "-Infinity"), REJECT),
    ("quantity=Infinity", literal("quantity", "Infinity"), REJECT),
    ("quantity=NaN", literal("quantity", "NaN"), REJECT),
    ("unit_price=NaN", literal("unit_price", "NaN"), REJECT),
    # the text around the object
    ("indented", lambda event: json.dumps(event, indent=2).encode(), FAST),
    ("a byte order mark", text(lambda b: "\ufeff" + b), MODEL),
    ("trailing text", text(lambda b: b + " x"), REJECT),
    ("a second object", text(lambda b: b + b), REJECT),
    ("truncated", text(lambda b: b[:-1]), REJECT),
    (
        "latin-1 text",
        lambda event: json.dumps(dict(event, country="é"), ensure_ascii=False).encode("latin-1"),
        REJECT,
    ),
    *((f"raw {payload!r}", raw(payload), REJECT) for payload in RAW),
    ("raw {}", raw(b"{}"), REJECT),
]


@pytest.fixture(scope="module")
def event(stream: OrderStream) -> dict[str, Any]:
    return json.loads(stream.records[0][1])


@pytest.mark.parametrize(("name", "mutate", "verdict"), CASES, ids=[name for name, *_ in CASES])
def test_a_mutated_payload_is_decided_as_the_model_decides(
    event: dict[str, Any], name: str, mutate: Mutation, verdict: str
) -> None:
    payload = mutate(copy.deepcopy(event))
    expected = _decode_with_model(payload)
    fast = decode_fast(payload)
    if fast is not None:
        assert shown(fast) == shown(expected)
    taken = (
        FAST if fast is not None else REJECT if isinstance(expected, EventDecodeError) else MODEL
    )
    assert taken == verdict
    assert [shown(result) for result in decode_orders([payload])] == [shown(expected)]
