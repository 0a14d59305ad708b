"""`orders.raw` in the canonical shape (the body of `POST /v1/orders`), produced with
confluent-kafka (librdkafka) to the embedded broker, on ingest and features as processes: it
needs no mapping, reaches the customer's features, becomes the event the same order sent over
HTTP becomes, and a broken one is rejected for the reason HTTP gives."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import polars as pl
import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from retention_cli.stack import Stack
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import OrderEvent, RejectedRecord, decode_event
from retention_shared.topics import Topics
from tests.support.kafka_reading import read_until
from tests.support.paths import TEST_DATA
from tests.support.stack import auth, stack_of_its_own, url

pytestmark = pytest.mark.slow
SLICE = TEST_DATA / "online_retail_slice.parquet"


def real_orders() -> list[dict[str, Any]]:
    """UCI Online Retail invoices of the bundled slice as canonical JSON bodies, each of its own
    customer: purchases with two to five distinct lines, in file order."""
    lines = (
        pl.read_parquet(SLICE)
        .filter(
            pl.col("CustomerID").is_not_null()
            & (pl.col("Quantity") > 0)
            & (pl.col("UnitPrice") > 0)
            & ~pl.col("InvoiceNo").str.starts_with("C")
        )
        .unique(["InvoiceNo", "StockCode"], keep="none", maintain_order=True)
    )
    invoices = (
        lines.group_by("InvoiceNo", maintain_order=True)
        .agg(
            pl.col("CustomerID").first(),
            pl.col("InvoiceDate").first(),
            pl.col("Country").first(),
            pl.struct("StockCode", "Quantity", "UnitPrice").alias("lines"),
        )
        .filter(pl.col("lines").list.len().is_between(2, 5))
        .unique("CustomerID", keep="first", maintain_order=True)
    )
    return [
        {
            "order_id": row["InvoiceNo"],
            "customer_id": str(int(row["CustomerID"])),
            "order_datetime": row["InvoiceDate"].isoformat(),
            "lines": [
                {
                    "product_id": ln["StockCode"],
                    "quantity": ln["Quantity"],
                    "unit_price": ln["UnitPrice"],
                }
                for ln in row["lines"]
            ],
            "country": row["Country"],
        }
        for row in invoices.iter_rows(named=True)
    ]


ORDERS = real_orders()


def total(order: dict[str, Any]) -> float:
    return sum(line["quantity"] * line["unit_price"] for line in order["lines"])


@pytest.fixture(scope="module")
def stack(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("canonical")
    with stack_of_its_own(kafka, work, "canonical", services=("ingest", "features")) as stack:
        yield stack


def topics(stack: Stack) -> Topics:
    return Topics.with_prefix(stack.settings.topic_prefix)


def produce(stack: Stack, bodies: list[bytes], tenant: bytes = b"default") -> None:
    """Each body as an `orders.raw` record from librdkafka, with the tenant header; every
    delivery confirmed by the broker."""
    producer = Producer({"bootstrap.servers": stack.settings.kafka_bootstrap, "acks": "all"})
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    for body in bodies:
        producer.produce(
            topics(stack).orders_raw,
            value=body,
            headers=[("tenant", tenant)],
            on_delivery=delivered,
        )
    assert producer.flush(30) == 0, "records not delivered within 30 s"
    assert failures == []


def post(stack: Stack, body: bytes) -> httpx.Response:
    """The same bytes over HTTP (json= would refuse NaN, which JSON parsers, ours too, accept)."""
    return httpx.post(
        f"{url(stack, 'ingest')}/v1/orders",
        content=body,
        headers={**auth(), "content-type": "application/json"},
        timeout=30,
    )


def wait_for(get: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool]) -> Any:
    deadline = time.monotonic() + 60
    while True:
        response = get()
        if done(response):
            return response.json()
        assert time.monotonic() < deadline, response.text
        time.sleep(0.3)


def orders_of(stack: Stack, customer_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url(stack, 'features')}/v1/customers/{customer_id}/orders", headers=auth()
    )
    return response.json()["orders"] if response.status_code == 200 else []


def events_of(stack: Stack, order_id: str, count: int) -> list[OrderEvent]:
    """The first `count` events of `order_id` on `transactions`, in topic order."""

    def found(records: list) -> list[OrderEvent]:
        events = (decode_event(OrderEvent, r.value) for r in records)
        return [e for e in events if e.order_id == order_id]

    records = asyncio.run(
        read_until(stack.settings, topics(stack).transactions, lambda got: len(found(got)) >= count)
    )
    return found(records)[:count]


def test_a_canonical_record_from_librdkafka_needs_no_mapping_and_reaches_features(
    stack: Stack,
) -> None:
    order = ORDERS[0]
    produce(stack, [json.dumps(order).encode()])

    history = wait_for(
        lambda: httpx.get(
            f"{url(stack, 'features')}/v1/customers/{order['customer_id']}/orders", headers=auth()
        ),
        lambda r: r.status_code == 200,
    )
    assert [(o["order_id"], o["lines"], o["cancelled"]) for o in history["orders"]] == [
        (order["order_id"], len(order["lines"]), False)
    ]
    assert history["orders"][0]["net_value"] == pytest.approx(total(order))
    vector = httpx.get(
        f"{url(stack, 'features')}/v1/customers/{order['customer_id']}/features", headers=auth()
    ).json()
    assert vector["features"]["frequency"] == 1
    assert vector["features"]["monetary"] == pytest.approx(total(order))

    # librdkafka reads the event back from the embedded broker too (fetch, consumer group).
    consumer = Consumer(
        {
            "bootstrap.servers": stack.settings.kafka_bootstrap,
            "group.id": "canonical-test-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics(stack).transactions])
    try:
        deadline = time.monotonic() + 30
        event = None
        while event is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            decoded = decode_event(OrderEvent, message.value())
            if decoded.order_id == order["order_id"]:
                event = decoded
    finally:
        consumer.close()
    assert event is not None, "confluent-kafka consumer saw no event"
    assert (event.tenant_id, event.customer_id, event.kind) == (
        "default",
        order["customer_id"],
        "purchase",
    )
    assert event.source.startswith(topics(stack).orders_raw + ":")


def test_one_order_over_http_and_orders_raw_is_one_event_and_amends_alike(stack: Stack) -> None:
    order = ORDERS[1]
    body = json.dumps(order).encode()
    response = post(stack, body)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    produce(stack, [body])

    over_http, over_raw = events_of(stack, order["order_id"], 2)
    assert over_http.source == "http" and over_raw.source.startswith(topics(stack).orders_raw)
    assert over_raw.model_dump(exclude={"source"}) == over_http.model_dump(exclude={"source"})
    assert over_raw.event_id == response.json()["results"][0]["event_ids"][0]

    # Other lines without a higher version: HTTP answers 409, orders.raw rejects it, both alike.
    fewer = {**order, "lines": order["lines"][:1]}
    assert post(stack, json.dumps(fewer).encode()).status_code == 409
    produce(stack, [json.dumps(fewer).encode()])
    rejected = rejected_for(stack, [order["order_id"]])
    assert rejected[order["order_id"]] == [("amended_without_version", "lines")]

    # With a higher version, the record amends the order, as HTTP would.
    produce(stack, [json.dumps({**fewer, "version": 1}).encode()])
    (_, _, amended) = events_of(stack, order["order_id"], 3)
    assert (amended.version, len(amended.lines)) == (1, 1)
    wait_for(
        lambda: httpx.get(
            f"{url(stack, 'features')}/v1/customers/{order['customer_id']}/orders", headers=auth()
        ),
        lambda r: r.status_code == 200 and r.json()["orders"][0]["lines"] == 1,
    )
    # One order, amended: the retry before the amendment (same key, so same partition, read
    # in order) added no second copy.
    (kept,) = orders_of(stack, order["customer_id"])
    assert (kept["order_id"], kept["net_value"]) == (order["order_id"], pytest.approx(total(fewer)))


def rejected_for(stack: Stack, order_ids: list[str]) -> dict[str, list[tuple[str, str | None]]]:
    """Per order id, the (code, field) reasons of its last `transactions.rejected` record."""

    def of(records: list) -> dict[str, list[tuple[str, str | None]]]:
        found = {}
        for raw in records:
            rejected = decode_event(RejectedRecord, raw.value)
            record = rejected.record if isinstance(rejected.record, dict) else {}
            if record.get("order_id") in order_ids:
                found[record["order_id"]] = [(r.code, r.field) for r in rejected.reasons]
        return found

    records = asyncio.run(
        read_until(
            stack.settings,
            topics(stack).transactions_rejected,
            lambda got: len(of(got)) == len(order_ids),
        )
    )
    return of(records)


def http_outcome(response: httpx.Response) -> tuple[str, list[tuple[str, str | None]]]:
    """("accepted" | "rejected", [(code, field)]) of one order; a 422 as orders.raw names it:
    `invalid_order` and the field."""
    if response.status_code == 422:
        answer = response.json()
        # The 422 body's list is `detail` or, as RFC 9457 problem+json, `errors`.
        problems = answer["errors"] if isinstance(answer.get("errors"), list) else answer["detail"]
        return "rejected", [
            ("invalid_order", problem["field"].removeprefix("body.")) for problem in problems
        ]
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    return result["status"], [(p["code"], p["field"]) for p in result["problems"]]


def broken(order: dict[str, Any], line: dict[str, Any] | None = None, **fields: Any) -> dict:
    """A real order with some fields replaced (`line`: replaced in its first line)."""
    lines = [{**order["lines"][0], **(line or {})}, *order["lines"][1:]]
    return {**order, "lines": lines, **fields}


def test_a_malformed_canonical_record_is_rejected_as_http_rejects_it(stack: Stack) -> None:
    cases = {
        "bad_quantity": broken(ORDERS[2], {"quantity": "six"}),
        "huge_price": broken(ORDERS[3], {"unit_price": 1e308}),
        "nan_price": broken(ORDERS[4], {"unit_price": math.nan}),
        "in_2030": broken(ORDERS[5], order_datetime="2030-06-01T10:00:00"),
        "control_characters": broken(ORDERS[6], customer_id="17850\x1b[2J"),
        "formula": broken(ORDERS[7], customer_id='=HYPERLINK("http://evil","x")'),
        "boolean_customer": broken(ORDERS[8], customer_id=True),
        "nul_in_currency": broken(ORDERS[9], currency="GBP\x00"),
        "unknown_field": broken(ORDERS[10], {"colour": "red"}),
    }
    bodies = {name: json.dumps(order).encode() for name, order in cases.items()}
    http = {name: http_outcome(post(stack, body)) for name, body in bodies.items()}
    produce(stack, list(bodies.values()))

    rejected_ids = [cases[name]["order_id"] for name in cases if http[name][1]]
    rejected = rejected_for(stack, rejected_ids)
    accepted_ids = {cases[name]["order_id"] for name in cases if http[name][0] == "accepted"}
    raw_events = {
        e.order_id
        for e in (
            decode_event(OrderEvent, r.value)
            for r in asyncio.run(
                read_until(
                    stack.settings,
                    topics(stack).transactions,
                    lambda got: (
                        accepted_ids
                        <= {
                            decode_event(OrderEvent, r.value).order_id
                            for r in got
                            if decode_event(OrderEvent, r.value).source != "http"
                        }
                    ),
                )
            )
        )
        if e.source != "http"
    }
    raw = {
        name: (
            "accepted" if order["order_id"] in raw_events else "rejected",
            rejected.get(order["order_id"], []),
        )
        for name, order in cases.items()
    }
    assert raw == http

    # What HTTP gives, so the comparison above is of the reasons these values must get.
    def on_every_line(code: str, field: str, name: str) -> list[tuple[str, str]]:
        return [(code, field)] * len(cases[name]["lines"])

    assert http == {
        "bad_quantity": ("accepted", [("unparseable_quantity", "lines.0.quantity")]),
        "huge_price": ("accepted", [("unit_price_out_of_range", "lines.0.unit_price")]),
        "nan_price": ("accepted", [("missing_unit_price", "lines.0.unit_price")]),
        "in_2030": (
            "rejected",
            on_every_line("future_order_datetime", "order_datetime", "in_2030"),
        ),
        "control_characters": (
            "rejected",
            on_every_line("invalid_customer_id", "customer_id", "control_characters"),
        ),
        # A formula is printable text, so a valid id; every CSV written neutralizes it.
        "formula": ("accepted", []),
        "boolean_customer": ("rejected", [("invalid_order", "customer_id")]),
        "nul_in_currency": ("rejected", [("invalid_order", "currency")]),
        "unknown_field": ("rejected", [("invalid_order", "lines.0.colour")]),
    }


def test_records_in_the_tenants_columns_and_a_saved_mapping_keep_their_way(stack: Stack) -> None:
    """UCI's columns are still recognized; a tenant's saved mapping is applied first, and a
    canonical record it cannot read is still read as canonical."""
    uci, canonical = ORDERS[11], ORDERS[12]
    uci_record = {
        "InvoiceNo": uci["order_id"],
        "CustomerID": float(uci["customer_id"]),
        "InvoiceDate": uci["order_datetime"].replace("T", " "),
        "Country": uci["country"],
        "lines": [
            {
                "StockCode": ln["product_id"],
                "Quantity": ln["quantity"],
                "UnitPrice": ln["unit_price"],
            }
            for ln in uci["lines"]
        ],
    }
    mapping = {
        "customer_id": "Kunde",
        "order_id": "Beleg",
        "order_datetime": "Datum",
        "product_id": "Artikel",
        "quantity": "Menge",
        "unit_price": "Preis",
        "date_format": "%d.%m.%Y %H:%M",
    }
    saved = httpx.put(
        f"{url(stack, 'ingest')}/v1/mappings/default",
        json={"mapping": mapping},
        headers=auth("e2e-other"),
    )
    assert saved.status_code in (200, 204), saved.text
    mapped = ORDERS[13]
    at = mapped["order_datetime"]
    mapped_record = {
        "Beleg": mapped["order_id"],
        "Kunde": mapped["customer_id"],
        # Day-first, as only the saved mapping says: ISO reading would reject it.
        "Datum": f"{at[8:10]}.{at[5:7]}.{at[0:4]} {at[11:16]}",
        "lines": [
            {"Artikel": ln["product_id"], "Menge": ln["quantity"], "Preis": ln["unit_price"]}
            for ln in mapped["lines"]
        ],
    }
    produce(stack, [json.dumps(uci_record).encode()])
    produce(stack, [json.dumps(mapped_record).encode(), json.dumps(canonical).encode()], b"other")

    for order, tenant in ((uci, "default"), (mapped, "other"), (canonical, "other")):
        (event,) = events_of(stack, order["order_id"], 1)
        assert (event.tenant_id, event.customer_id) == (tenant, order["customer_id"])
        assert event.total == pytest.approx(total(order))
        assert len(event.lines) == len(order["lines"])
