"""A corpus of hostile and careless requests against the running stack, class by class.

One stack (the four services on the session's broker) with a tenant holding real customers and a
trained champion. Every case is a request built from real UCI data with one thing made hostile,
and what must come back: a 4xx whose body names the field, or a 200 whose order is rejected with a
reason code naming the field and counted on `retention_ingest_rows_total`, or (uploads) a 202 whose
upload ends with every row accepted or rejected with a reason. Never a 5xx. After each class every
service is live and ready, and none counted a 5xx.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from retention_cli.stack import SERVICES, Stack
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.broker import isolated_settings
from tests.support.problems import field_problems
from tests.support.scoring_service import (
    feature_events,
    serve_champion,
    train_bundle,
    wait_for,
)
from tests.support.stack import auth, running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

SLICE = TEST_DATA / "online_retail_slice.parquet"
UNPACKED_LIMIT = 20_000_000
UPLOAD_LIMIT = 4 * 1024 * 1024
REQUEST_LIMIT = 10 * 1024 * 1024
FORMULAS = ("=cmd|' /C calc'!A0", "@SUM(1)", "+1+1", "-1+1", '=HYPERLINK("http://x","y")')
UNSAFE_START = ("=", "+", "-", "@", "\t", "\r")
# Ids that break something: control and bidi characters, a lone surrogate, length, blankness.
BAD_IDS = {
    "nul": "17850\x00",
    "esc": "\x1b[2J17850",
    "rlo": "\u202e05871",
    "lone-surrogate": "\ud800",
    "257-chars": "7" * 257,
    "1M-chars": "7" * 1_000_000,
    "c1-control": "178\x9b50",  # CSI (a trailing NEL is whitespace: trimmed)
    "del": "17850\x7f",
    "lrm": "\u200e17850",
}


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Corpus:
    stack: Stack
    customers: list[str]  # scoring's customers (Online Retail II slice), real ids
    vector: dict[str, float]  # one real feature vector of the champion's features
    segment: str
    # 5xx counted while the stack started (scoring's honest 503 before the champion arrived).
    started: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def corpus(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    work = tmp_path_factory.mktemp("corpus")
    settings: Settings = isolated_settings(kafka, work / "data")
    # The model trains while the services start (both mostly wait on something else).
    training = ThreadPoolExecutor(1).submit(train_bundle)
    with running_stack(
        settings,
        work / "services.log",
        RETENTION_RETRAIN_EVERY_HOURS="0",
        RETENTION_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
        RETENTION_MAX_UPLOAD_UNPACKED_BYTES=str(UNPACKED_LIMIT),
    ) as s:
        bundle = training.result()
        orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet", tenant="default")
        events = feature_events(orders)
        serve_champion(
            settings, url(s, "scoring"), auth(), bundle, events, Path(s.env["BENTOML_HOME"]), work
        )
        vector = {name: events[0].features[name] for name in bundle.feature_names}
        started = server_errors(s)
        yield Corpus(s, [e.customer_id for e in events], vector, bundle.segmenter.names[0], started)


# --- real orders -------------------------------------------------------------------------------


def _real_orders() -> list[dict[str, Any]]:
    """Purchases of the Online Retail slice with a customer and 2-5 clean lines, as canonical
    JSON orders (naive UK timestamps, as the export has them)."""
    lines = pl.read_parquet(SLICE).filter(
        pl.col("CustomerID").is_not_null()
        & (pl.col("Quantity") > 0)
        & (pl.col("UnitPrice") > 0)
        & ~pl.col("InvoiceNo").str.starts_with("C")
    )
    orders = (
        lines.unique(["InvoiceNo", "StockCode"], keep="first", maintain_order=True)
        .group_by("InvoiceNo", maintain_order=True)
        .agg(
            pl.col("CustomerID").first(),
            pl.col("InvoiceDate").first(),
            pl.col("Country").first(),
            pl.struct("StockCode", "Quantity", "UnitPrice").alias("lines"),
        )
        .filter(pl.col("lines").list.len().is_between(2, 5))
    )
    return [
        {
            "order_id": row["InvoiceNo"],
            "customer_id": str(int(row["CustomerID"])),
            "order_datetime": row["InvoiceDate"].isoformat(),
            "country": row["Country"],
            "lines": [
                {
                    "product_id": x["StockCode"],
                    "quantity": x["Quantity"],
                    "unit_price": x["UnitPrice"],
                }
                for x in row["lines"]
            ],
        }
        for row in orders.iter_rows(named=True)
    ]


REAL_ORDERS = _real_orders()
_next_order = iter(REAL_ORDERS)


def real_order() -> dict[str, Any]:
    """The next real order not used by another case (each case its own order id)."""
    return json.loads(json.dumps(next(_next_order)))


# --- cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """200; the order is answered with `code` naming `field`, and the row counter moved."""

    code: str
    field: str


@dataclass(frozen=True)
class Accepted:
    """200; the order (hostile-looking but valid) is accepted whole."""


@dataclass(frozen=True)
class Refused:
    """A 4xx of this status whose body names `field` (None: any field)."""

    status: int
    field: str | None = None


@dataclass(frozen=True)
class Answered:
    """One of these statuses; a 4xx among them must name a field."""

    statuses: tuple[int, ...]


Expect = Rejected | Accepted | Refused | Answered
NOTHING = object()


@dataclass(frozen=True)
class Case:
    name: str
    service: str
    method: str
    path: str
    expect: Expect
    body: Any = NOTHING  # JSON as Python writes it: NaN, Infinity and "\ud800" as JSON allows
    content: bytes | Callable[[], Iterator[bytes]] | None = None
    params: Any = None
    headers: dict[str, str | bytes] = field(default_factory=dict)
    lines: int = 0  # order lines sent (orders answered per row)

    def __str__(self) -> str:
        return self.name


def order_case(name: str, change: Callable[[dict], Any], expect: Expect) -> Case:
    order = real_order()
    body = change(order)
    body = order if body is None else body
    lines = sum(
        len(o["lines"]) if isinstance(o, dict) and isinstance(o.get("lines"), list) else 0
        for o in body.get("orders", [body])
    )
    return Case(f"orders-{name}", "ingest", "POST", "/v1/orders", expect, body=body, lines=lines)


def set_order(key: str, value: Any) -> Callable[[dict], None]:
    return lambda order: order.__setitem__(key, value)


def set_line(key: str, value: Any) -> Callable[[dict], None]:
    return lambda order: order["lines"][0].__setitem__(key, value)


def _orders_cases() -> list[Case]:
    cases: list[Case] = []
    numbers = {
        "1e308": (1e308, "out_of_range"),
        "-1e308": (-1e308, "out_of_range"),
        "NaN": (math.nan, "missing"),  # not a number: no value
        "Infinity": (math.inf, "missing"),  # read as no number, like NaN
        "-Infinity": (-math.inf, "missing"),
        "10e400-int": (10**400, "unparseable"),  # no float holds it
        "text": ("six", "unparseable"),
        "formula": ("=1+1", "unparseable"),
        "null": (None, "missing"),
        "empty-text": ("", "missing"),
    }
    for key in ("quantity", "unit_price"):
        for name, (value, kind) in numbers.items():
            code = f"{kind}_{key}"
            if kind == "out_of_range":
                code = f"{key}_out_of_range"
            if key == "unit_price" and name == "-1e308":
                code = "non_positive_price"
            cases.append(
                order_case(f"{key}-{name}", set_line(key, value), Rejected(code, f"lines.0.{key}"))
            )
        for name, value in {
            "boolean": True,
            "object": {"value": 1},
            "list": [1],
        }.items():
            cases.append(
                order_case(f"{key}-{name}", set_line(key, value), Refused(422, f"lines.0.{key}"))
            )
    cases += [
        # Subnormal but finite and not zero: a (tiny) line whose money rounds to nothing.
        order_case("quantity-1e-320", set_line("quantity", 1e-320), Accepted()),
        order_case(
            "quantity-zero", set_line("quantity", 0), Rejected("zero_quantity", "lines.0.quantity")
        ),
        order_case("price-1e-320", set_line("unit_price", 1e-320), Accepted()),
        order_case(
            "total-1e6x1e6",
            lambda o: o["lines"][0].update(quantity=1_000_000, unit_price=1_000_000),
            Rejected("order_total_out_of_range", "lines"),
        ),
        order_case(
            "1e308x1e308",
            lambda o: o["lines"][0].update(quantity=1e308, unit_price=1e308),
            Rejected("quantity_out_of_range", "lines.0.quantity"),
        ),
    ]
    dates = {
        "2030": ("2030-01-01T00:00:00", "future_order_datetime"),
        # Past year 9999 once in UTC: no timestamp.
        "9999-12-31-minus-5h": ("9999-12-31T23:59:59-05:00", "unparseable_order_datetime"),
        "0001-01-01": ("0001-01-01T00:00:00", "unparseable_order_datetime"),
        "1900": ("1900-01-01T00:00:00", "order_datetime_too_old"),
        "0000-00-00": ("0000-00-00", "unparseable_order_datetime"),
        "2011-02-30": ("2011-02-30T10:00:00", "unparseable_order_datetime"),
        "garbage": ("yesterday at noon", "unparseable_order_datetime"),
        "sql": ("2011-01-01'; DROP TABLE orders;--", "unparseable_order_datetime"),
        "empty": ("", "missing_order_datetime"),
        "null": (None, "missing_order_datetime"),
        "epoch-number-1e308": (1e308, "unparseable_order_datetime"),
        "offset-+25:00": ("2011-01-01T00:00:00+25:00", "unparseable_order_datetime"),
    }
    for name, (value, code) in dates.items():
        cases.append(
            order_case(
                f"order_datetime-{name}",
                set_order("order_datetime", value),
                Rejected(code, "order_datetime"),
            )
        )
    for key, code in (("customer_id", "invalid_customer_id"), ("order_id", "invalid_order_id")):
        for name, value in BAD_IDS.items():
            cases.append(order_case(f"{key}-{name}", set_order(key, value), Rejected(code, key)))
        for name, value in {"whitespace": " \t ", "empty": "", "null": None}.items():
            cases.append(
                order_case(f"{key}-{name}", set_order(key, value), Rejected(f"missing_{key}", key))
            )
        for name, value in {"boolean": False, "object": {"id": 1}, "list": ["1"]}.items():
            cases.append(order_case(f"{key}-{name}", set_order(key, value), Refused(422, key)))
    for name, value in BAD_IDS.items():
        cases.append(
            order_case(
                f"product_id-{name}",
                set_line("product_id", value),
                Rejected("invalid_product_id", "lines.0.product_id"),
            )
        )
    for index, formula in enumerate(FORMULAS):
        # A formula is a valid id; CSV exports neutralize it.
        cases.append(
            order_case(
                f"customer_id-formula-{index}", set_order("customer_id", formula), Accepted()
            )
        )
    cases += [
        order_case("customer_id-number", set_order("customer_id", 17850.0), Accepted()),
        order_case("customer_id-unicode", set_order("customer_id", "客户-17850-é"), Accepted()),
        order_case("order_id-number", set_order("order_id", 990001), Accepted()),
        order_case(
            "currency-object", set_order("currency", {"code": "GBP"}), Refused(422, "currency")
        ),
        order_case("country-list", set_order("country", ["UK"]), Refused(422, "country")),
        order_case("country-empty", set_order("country", ""), Accepted()),
        order_case("country-formula", set_order("country", "=cmd|' /C calc'!A0"), Accepted()),
        order_case(
            "currency-1M-chars", set_order("currency", "G" * 1_000_000), Refused(422, "currency")
        ),
        order_case(
            "currency-lone-surrogate", set_order("currency", "\ud800"), Refused(422, "currency")
        ),
        order_case("country-nul", set_order("country", "UK\x00"), Refused(422, "country")),
        order_case("country-esc", set_order("country", "\x1b[2JUK"), Refused(422, "country")),
        order_case("country-rlo", set_order("country", "\u202eKU"), Refused(422, "country")),
        order_case("version-negative", set_order("version", -1), Refused(422, "version")),
        order_case("version-2**60", set_order("version", 2**60), Refused(422, "version")),
        order_case("version-text", set_order("version", "2"), Refused(422, "version")),
        order_case("unknown-field", set_order("colour", "red"), Refused(422, "colour")),
        order_case(
            "unknown-line-field", set_line("discount", 0.5), Refused(422, "lines.0.discount")
        ),
        order_case("lines-empty", set_order("lines", []), Refused(422, "lines")),
        order_case("lines-text", set_order("lines", "none"), Refused(422, "lines")),
        order_case("lines-null", set_order("lines", None), Refused(422, "lines")),
        order_case("line-not-object", lambda o: o["lines"].append(7), Refused(422, "lines.")),
        order_case("batch-not-list", lambda o: {"orders": o}, Refused(422, "orders")),
        order_case("batch-of-text", lambda o: {"orders": ["order"]}, Refused(422, "orders.0")),
        order_case(
            "batch-unknown-key",
            lambda o: {"orders": [o], "dry_run": True},
            Refused(422, "dry_run"),
        ),
        order_case(
            "batch-over-limit",
            lambda o: {"orders": [o] * 1001},
            Refused(413, "orders"),
        ),
        order_case(
            "batch-one-bad-of-two",
            lambda o: {
                "orders": [o, {**o, "order_id": o["order_id"] + "-x", "customer_id": "\x00"}]
            },
            Rejected("invalid_customer_id", "customer_id"),
        ),
    ]
    # One order id twice in a batch: lines group per (order, customer, kind) as in files, so
    # other content is a reject (two customers) or one order, every row counted either way.
    cases += [
        order_case(
            "batch-same-id-other-customer",
            lambda o: {"orders": [o, {**o, "customer_id": "12583"}]},
            Rejected("conflicting_customer_id", "customer_id"),
        ),
        order_case("batch-same-id-twice", lambda o: {"orders": [o, o]}, Answered((200,))),
        order_case(
            "batch-same-id-other-date",
            lambda o: {"orders": [o, {**o, "order_datetime": "2011-12-01T08:26:00"}]},
            Answered((200,)),
        ),
        order_case(
            "batch-same-id-cancelled-too",
            lambda o: {"orders": [o, {**o, "lines": [{**o["lines"][0], "quantity": -1}]}]},
            Answered((200,)),
        ),
        order_case("lines-repeated", lambda o: o.update(lines=o["lines"] * 3), Answered((200,))),
        order_case(
            "1000-lines-of-1e308",
            lambda o: o.update(
                lines=[
                    {
                        "product_id": f"{o['lines'][0]['product_id']}-{i}",
                        "quantity": 1e308,
                        "unit_price": 1.0,
                    }
                    for i in range(1000)
                ]
            ),
            Rejected("quantity_out_of_range", "lines.999.quantity"),
        ),
    ]
    deep = json.dumps({**real_order(), "lines": "HERE"}).encode()
    cases.append(
        Case(
            "orders-lines-nested-1000-levels",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(400, "body"),  # past the JSON parser's depth
            content=deep.replace(b'"HERE"', b"[" * 1000 + b"]" * 1000),
            headers={"content-type": "application/json"},
        )
    )
    twice = json.dumps({**real_order(), "order_id": "DUP"}).encode()
    raw = {
        "not-json": (b"order_id=1&customer_id=2", Refused(422, "body")),
        "truncated-json": (json.dumps(real_order()).encode()[:-7], Refused(422, "body")),
        "empty": (b"", Refused(422, "body")),
        "array": (json.dumps([real_order()]).encode(), Refused(422, "body")),
        "string": (b'"an order"', Refused(422, "body")),
        "null": (b"null", Refused(422, "body")),
        "nested-100k-levels": (b"[" * 100_000 + b"]" * 100_000, Refused(400, "body")),
        "object-100k-levels": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, Refused(400, "body")),
        "invalid-utf8": (b'{"order_id": "\xff\xfe"}', Refused(400, "body")),
        "utf16": ('{"order_id": "1"}'.encode("utf-16"), Refused(422, None)),
        # JSON's last duplicate wins: an object where an id goes.
        "duplicate-keys": (
            twice.replace(b'"order_id": "DUP"', b'"order_id": "1", "order_id": {"x": 1}'),
            Refused(422, "order_id"),
        ),
    }
    for name, (content, expect) in raw.items():
        cases.append(
            Case(
                f"orders-body-{name}",
                "ingest",
                "POST",
                "/v1/orders",
                expect,
                content=content,
                headers={"content-type": "application/json"},
            )
        )

    def chunked() -> Iterator[bytes]:
        piece = b" " * 65_536
        for _ in range(REQUEST_LIMIT // len(piece) + 2):
            yield piece

    order = real_order()
    cases += [
        Case(
            "orders-body-chunked-over-limit",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(413, "body"),
            content=chunked,
            headers={"content-type": "application/json"},
        ),
        Case(
            "orders-body-declared-over-limit",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(413, "body"),
            content=b" " * (REQUEST_LIMIT + 1),
            headers={"content-type": "application/json"},
        ),
        Case(
            "orders-content-type-text",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(422, None),
            content=json.dumps(order).encode(),
            headers={"content-type": "text/plain"},
        ),
        Case(
            "orders-content-type-form",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(422, None),
            content=b"order_id=1",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
    ]
    # The same order id again with other content: 409 naming what differs.
    first = real_order()
    amended = {**first, "customer_id": "12347"}
    cases += [
        Case(
            "orders-resend-original",
            "ingest",
            "POST",
            "/v1/orders",
            Accepted(),
            body=first,
            lines=len(first["lines"]),
        ),
        Case(
            "orders-resend-identical",
            "ingest",
            "POST",
            "/v1/orders",
            Accepted(),
            body=first,
            lines=len(first["lines"]),
        ),
        Case(
            "orders-resend-other-customer",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(409, "customer_id"),
            body=amended,
        ),
        Case(
            "orders-resend-other-lines",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(409, "lines"),
            body={**first, "lines": first["lines"][:1]},
        ),
        Case(
            "orders-resend-other-lines-in-batch",
            "ingest",
            "POST",
            "/v1/orders",
            Refused(409, "orders.0.lines"),
            body={"orders": [{**first, "lines": first["lines"][:1]}]},
        ),
    ]
    return cases


ORDERS = _orders_cases()


# --- checking answers --------------------------------------------------------------------------


def fields_of(response: httpx.Response) -> list[str]:
    """The fields an error answer names (after checking it is a problem+json Problem)."""
    return [field for field, _ in field_problems(response)]


def names(response: httpx.Response, wanted: str | None) -> bool:
    found = fields_of(response)
    if wanted is None:
        return bool(found)
    # Query parameters are named as FastAPI locates them ("query.limit"), a union's members
    # after the field ("customer_id.str").
    return any(
        f == wanted
        or f.endswith(f".{wanted}")
        or f.startswith(wanted if wanted.endswith(".") else f"{wanted}.")
        for f in found
    )


def rows_counted(stack: Stack) -> Counter[tuple[str, str]]:
    """`retention_ingest_rows_total` of tenant default by (outcome, reason)."""
    counted: Counter[tuple[str, str]] = Counter()
    for sample in samples(stack, "ingest", "retention_ingest_rows_total"):
        if sample.labels.get("tenant") == "default":
            counted[(sample.labels["outcome"], sample.labels["reason"])] += sample.value
    return counted


def samples(stack: Stack, service: str, metric: str) -> list[Any]:
    text = httpx.get(f"{url(stack, service)}/metrics", timeout=30).text
    return [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == metric
    ]


def send(stack: Stack, case: Case) -> httpx.Response:
    headers = {**auth(), **case.headers}
    content = case.content() if callable(case.content) else case.content
    if case.body is not NOTHING:
        content = json.dumps(case.body).encode()
        headers.setdefault("content-type", "application/json")
    return httpx.request(
        case.method,
        f"{url(stack, case.service)}{case.path}",
        content=content,
        params=case.params,
        headers=headers,
        timeout=60,
    )


def check(stack: Stack, case: Case) -> None:
    before = rows_counted(stack) if case.service == "ingest" else None
    response = send(stack, case)
    status = response.status_code
    shown = f"{case.name}: {status} {response.text[:400]}"
    assert status < 500, shown
    expect = case.expect
    if isinstance(expect, Refused):
        assert status == expect.status, shown
        assert names(response, expect.field), f"{shown}\nfields {fields_of(response)}"
    elif isinstance(expect, Answered):
        assert status in expect.statuses, shown
        if status >= 400:
            assert names(response, None), shown
    else:
        assert status == 200, shown
        body = response.json()
        result = body["results"][-1] if isinstance(expect, Rejected) else body["results"][0]
        problems = [(p["code"], p["field"]) for p in result["problems"]]
        if isinstance(expect, Accepted):
            assert result["status"] == "accepted" and problems == [], shown
        else:
            assert (expect.code, expect.field) in problems, f"{shown}\n{problems}"
            if not expect.field.startswith("lines."):
                assert result["status"] == "rejected", shown
    if before is not None and status == 200:
        moved = rows_counted(stack) - before
        assert sum(moved.values()) == case.lines, (shown, moved)
        if isinstance(expect, Rejected):
            assert moved[("rejected", expect.code)] >= 1, (shown, moved)
        if isinstance(expect, Accepted) and case.name != "orders-resend-identical":
            assert moved == Counter({("accepted", ""): case.lines}), (shown, moved)


def server_errors(stack: Stack) -> Counter[tuple[str, str, str, str]]:
    """5xx answers counted by every service, by (service, method, route, status)."""
    counted: Counter[tuple[str, str, str, str]] = Counter()
    for service in SERVICES:
        for s in samples(stack, service, "retention_http_requests_total"):
            # /readyz answers 503 while a service is not ready: that is its job.
            if s.labels["status"].startswith("5") and s.labels["route"] != "/readyz":
                key = (service, s.labels["method"], s.labels["route"], s.labels["status"])
                counted[key] += s.value
    return counted


def healthy(corpus: Corpus) -> None:
    """Every service live and (within a while) ready, and no 5xx counted since the start."""
    for service in SERVICES:
        base = url(corpus.stack, service)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200, service
        wait_for(
            lambda b=base: httpx.get(f"{b}/readyz", timeout=10).status_code == 200,
            timeout=60,
            what=f"{service} ready",
        )
    assert server_errors(corpus.stack) - corpus.started == Counter()


# --- orders ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ORDERS, ids=str)
def test_orders(corpus: Corpus, case: Case) -> None:
    check(corpus.stack, case)


def test_healthy_after_orders_and_the_partitions_move_on(corpus: Corpus) -> None:
    """A real order sent after the corpus reaches the features service: nothing stalled."""
    healthy(corpus)
    sentinel = {**real_order(), "customer_id": "corpus-sentinel"}
    response = send(
        corpus.stack, Case("sentinel", "ingest", "POST", "/v1/orders", Accepted(), body=sentinel)
    )
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    features = f"{url(corpus.stack, 'features')}/v1/customers/corpus-sentinel/features"
    wait_for(
        lambda: httpx.get(features, headers=auth(), timeout=10).status_code == 200,
        timeout=60,
        what="the sentinel order applied by the features service",
    )
    healthy(corpus)


# --- uploads -----------------------------------------------------------------------------------

UCI_MAPPING = {
    "customer_id": "CustomerID",
    "order_id": "InvoiceNo",
    "order_datetime": "InvoiceDate",
    "product_id": "StockCode",
    "quantity": "Quantity",
    "unit_price": "UnitPrice",
}


@dataclass(frozen=True)
class AtOnce:
    """The upload is refused before it is read: this 4xx, naming `field` (and `code`)."""

    status: int
    field: str
    code: str | None = None


@dataclass(frozen=True)
class Finished:
    """202, then the upload ends in `state`; `code` is a reject reason (done) or the error
    (failed). Done: every row accepted or rejected with a reason, rejects.csv spreadsheet-safe."""

    state: str
    code: str | None = None


@dataclass(frozen=True)
class UploadCase:
    name: str
    content: bytes
    filename: str = "export.csv"
    form: dict[str, str] = field(default_factory=dict)
    expect: AtOnce | Finished = Finished("done")
    rows: int | None = None

    def __str__(self) -> str:
        return self.name


def real_rows(rows: int = 20, offset: int = 0) -> pl.DataFrame:
    """Real lines of the slice (with a customer, a price and a quantity), every column text."""
    return (
        pl.read_parquet(SLICE)
        .filter(
            pl.col("CustomerID").is_not_null()
            & (pl.col("Quantity") > 0)
            & (pl.col("UnitPrice") > 0)
        )
        .unique(maintain_order=True)
        .slice(offset, rows)
        .with_columns(
            pl.col("CustomerID").cast(pl.Int64),
            pl.col("InvoiceDate").dt.strftime("%Y-%m-%d %H:%M:%S"),
        )
        .cast(pl.String)
    )


_upload_offset = iter(range(0, 20_000, 20))


def cell_case(name: str, column: str, value: str, expect: Finished, **changes: str) -> UploadCase:
    """A real 20-row CSV whose first row's `column` is `value` (and other `changes`)."""
    frame = real_rows(offset=next(_upload_offset))
    first = pl.int_range(pl.len()) == 0
    frame = frame.with_columns(
        pl.when(first).then(pl.lit(v)).otherwise(pl.col(c)).alias(c)
        for c, v in {column: value, **changes}.items()
    )
    return UploadCase(
        f"uploads-{name}", frame.write_csv().encode(), expect=expect, rows=frame.height
    )


def _upload_cases() -> list[UploadCase]:
    cases: list[UploadCase] = []
    for column, key in (("Quantity", "quantity"), ("UnitPrice", "unit_price")):
        for name, value, code in (
            ("1e308", "1e308", f"{key}_out_of_range"),
            ("-1e308", "-1e308", "quantity_out_of_range" if key == "quantity" else None),
            ("NaN", "NaN", None),
            ("inf", "inf", None),
            ("400-digits", "1" + "0" * 400, None),
            ("text", "six", f"unparseable_{key}"),
            ("formula", "=1+1", f"unparseable_{key}"),
            ("empty", "", f"missing_{key}"),
            ("1e-320", "1e-320", None),
        ):
            cases.append(cell_case(f"{key}-{name}", column, value, Finished("done", code)))
    for name, value, code in (
        ("2030", "2030-01-01 00:00:00", "future_order_datetime"),
        ("1900", "1900-01-01 00:00:00", "order_datetime_too_old"),
        ("0000-00-00", "0000-00-00 00:00:00", "unparseable_order_datetime"),
        ("9999-12-31", "9999-12-31 23:59:59", "unparseable_order_datetime"),
        ("garbage", "not a date", "unparseable_order_datetime"),
        ("empty", "", "missing_order_datetime"),
    ):
        cases.append(
            cell_case(f"order_datetime-{name}", "InvoiceDate", value, Finished("done", code))
        )
    for column, key in (("CustomerID", "customer_id"), ("InvoiceNo", "order_id")):
        for name, value in BAD_IDS.items():
            if name in ("lone-surrogate", "1M-chars"):
                continue  # UTF-8 has no lone surrogate; a 1M-character cell is the orders' case
            code = f"invalid_{key}"
            # A NUL byte makes the file binary: no CSV, and said so at once.
            expect = AtOnce(415, "file", "unknown_format") if name == "nul" else None
            case = cell_case(f"{key}-{name}", column, value, Finished("done", code))
            cases.append(case if expect is None else replace(case, expect=expect))
        cases.append(
            cell_case(f"{key}-whitespace", column, "   ", Finished("done", f"missing_{key}"))
        )
        for index, formula in enumerate(FORMULAS):
            # Valid ids; a zero quantity sends the row to rejects.csv, which must keep it inert.
            cases.append(
                cell_case(
                    f"{key}-formula-{index}",
                    column,
                    formula,
                    Finished("done", "zero_quantity"),
                    Quantity="0",
                )
            )
    for name, value, code in (
        ("esc", "United\x1b[2J Kingdom", "invalid_country"),
        ("rlo", "\u202eKU", "invalid_country"),
        ("257-chars", "K" * 257, "invalid_country"),
        ("formula", "=cmd|' /C calc'!A0", None),
        ("empty", "", None),
    ):
        cases.append(cell_case(f"country-{name}", "Country", value, Finished("done", code)))
    cases.append(
        cell_case(
            "description-formula-rejected",
            "Description",
            "=cmd|' /C calc'!A0",
            Finished("done", "zero_quantity"),
            Quantity="0",
        )
    )
    cases.append(
        cell_case(
            "description-tab-cr-newline",
            "Description",
            '\tline one\r\nline "two"',
            Finished("done", "zero_quantity"),
            Quantity="0",
        )
    )
    text = real_rows(offset=next(_upload_offset)).write_csv().encode()
    half = gzip.compress(text)[:200]
    member = real_rows(200, offset=2_000).write_csv().encode()
    header, body = member.split(b"\n", 1)
    bomb = header + b"\n" + body * (UNPACKED_LIMIT // len(body) + 2)
    cases += [
        UploadCase(
            "uploads-truncated-gzip",
            half,
            "export.csv.gz",
            expect=AtOnce(422, "file", "truncated_file"),
        ),
        UploadCase(
            "uploads-gzip-bomb-declared",
            gzip.compress(bomb),
            "export.csv.gz",
            expect=AtOnce(413, "file", "upload_too_large"),
        ),
        UploadCase(
            "uploads-gzip-bomb-hidden",
            gzip.compress(bomb) + gzip.compress(b""),
            "export.csv.gz",
            expect=Finished("failed", "upload_too_large"),
        ),
        UploadCase(
            "uploads-over-size-limit", b"x" * (UPLOAD_LIMIT + 1), expect=AtOnce(413, "body")
        ),
        UploadCase("uploads-empty", b"", expect=AtOnce(422, "file", "empty_file")),
        UploadCase("uploads-whitespace", b" \n\t\n", expect=AtOnce(422, "file", "empty_file")),
        UploadCase(
            "uploads-header-only",
            text.split(b"\n", 1)[0] + b"\n",
            expect=Finished("failed", "no_rows"),
        ),
        UploadCase(
            "uploads-png-named-csv",
            b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
            expect=AtOnce(415, "file", "unknown_format"),
        ),
        UploadCase(
            "uploads-latin1",
            text + "12,X,CAF\xc9,1,2011-01-01 10:00:00,1.0,12583,France\n".encode("latin-1"),
            expect=AtOnce(422, "file", "not_utf8"),
        ),
        UploadCase(
            "uploads-utf16",
            text.decode().encode("utf-16"),
            expect=AtOnce(415, "file", "unknown_format"),
        ),
        UploadCase("uploads-csv-named-xlsx", text, "export.xlsx", expect=Finished("done"), rows=20),
        UploadCase(
            "uploads-path-traversal-name",
            text,
            "../../../etc/passwd",
            expect=Finished("done"),
            rows=20,
        ),
        UploadCase(
            "uploads-unknown-layout",
            text.replace(b"CustomerID", b"Client"),
            expect=AtOnce(422, "mapping", "unknown_layout"),
        ),
        UploadCase(
            "uploads-mapping-not-json",
            text,
            form={"mapping": "{customer_id: CustomerID"},
            expect=AtOnce(422, "mapping", "invalid_mapping"),
        ),
        UploadCase(
            "uploads-mapping-array",
            text,
            form={"mapping": "[1, 2]"},
            expect=AtOnce(422, "mapping", "invalid_mapping"),
        ),
        UploadCase(
            "uploads-mapping-missing-column",
            text,
            form={"mapping": json.dumps({**UCI_MAPPING, "customer_id": "Client"})},
            expect=AtOnce(422, "customer_id", "missing_column"),
        ),
        UploadCase(
            "uploads-mapping-control-characters",
            text,
            form={"mapping": json.dumps({**UCI_MAPPING, "customer_id": "Customer\x1bID"})},
            expect=AtOnce(422, "customer_id", "invalid_mapping"),
        ),
        UploadCase(
            "uploads-mapping-unknown-name",
            text,
            form={"mapping": json.dumps({**UCI_MAPPING, "loyalty_tier": "Country"})},
            expect=AtOnce(422, "loyalty_tier", "invalid_mapping"),
        ),
        UploadCase(
            "uploads-mapping-bad-date-format",
            text,
            form={"mapping": json.dumps({**UCI_MAPPING, "date_format": "dd/mm/yyyy"})},
            expect=AtOnce(422, "date_format", "invalid_mapping"),
        ),
        UploadCase(
            "uploads-mapping-valid",
            text,
            form={"mapping": json.dumps(UCI_MAPPING)},
            expect=Finished("done"),
            rows=20,
        ),
    ]
    for name, zone in (
        ("unknown", "Mars/Olympus"),
        ("traversal", "../../etc/passwd"),
        ("nul", "Europe/London\x00"),
        ("10k-chars", "E" * 10_000),
        ("not-a-zone-file", "zone.tab"),
        ("posixrules", "posixrules"),
        ("Factory", "Factory"),
    ):
        cases.append(
            UploadCase(
                f"uploads-timezone-{name}",
                text,
                form={"timezone": zone},
                expect=AtOnce(422, "timezone", "unknown_timezone"),
            )
        )
    return cases


UPLOADS = _upload_cases()


def upload(stack: Stack, case: UploadCase) -> httpx.Response:
    return httpx.post(
        f"{url(stack, 'ingest')}/v1/uploads",
        files={"file": (case.filename, case.content)},
        data=case.form,
        headers=auth(),
        timeout=60,
    )


def finished(stack: Stack, upload_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{url(stack, 'ingest')}/v1/uploads/{upload_id}", headers=auth())
        assert status.status_code == 200, status.text
        if status.json()["state"] in ("done", "failed"):
            return status.json()
        assert time.monotonic() < deadline, status.text
        time.sleep(0.1)


def spreadsheet_safe(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    for row in rows:
        for cell in row:
            assert not cell.startswith(UNSAFE_START), (cell, row)
    return rows


@pytest.mark.parametrize("case", UPLOADS, ids=str)
def test_uploads(corpus: Corpus, case: UploadCase) -> None:
    response = upload(corpus.stack, case)
    shown = f"{case.name}: {response.status_code} {response.text[:400]}"
    assert response.status_code < 500, shown
    expect = case.expect
    if isinstance(expect, AtOnce):
        assert response.status_code == expect.status, shown
        assert names(response, expect.field), shown
        if expect.code is not None:
            assert response.json()["code"] == expect.code, shown
        return
    assert response.status_code == 202, shown
    upload_id = response.json()["upload_id"]
    status = finished(corpus.stack, upload_id)
    assert status["state"] == expect.state, (case.name, status)
    rejects = httpx.get(
        f"{url(corpus.stack, 'ingest')}/v1/uploads/{upload_id}/rejects.csv", headers=auth()
    )
    if expect.state == "failed":
        assert status["error"]["code"] and status["error"]["problem"], status
        if expect.code is not None:
            assert status["error"]["code"] == expect.code, status
        # A failed upload has no rejects to give: a 409 naming the upload, or a safe file.
        assert rejects.status_code in (200, 409), rejects.text
        if rejects.status_code == 409:
            assert names(rejects, "upload_id"), rejects.text
        else:
            spreadsheet_safe(rejects.text)
        return
    progress = status["progress"]
    assert progress["rows_read"] == case.rows, (case.name, progress)
    assert progress["accepted"] + progress["rejected"] == case.rows, (case.name, progress)
    assert sum(progress["rejected_by_reason"].values()) == progress["rejected"], progress
    if expect.code is not None:
        assert progress["rejected_by_reason"].get(expect.code, 0) >= 1, (case.name, progress)
    assert rejects.status_code == 200, rejects.text
    rows = spreadsheet_safe(rejects.text)
    assert rows[0][:2] == ["row", "reason"]
    assert len(rows) - 1 == progress["rejected"], (case.name, rows)
    assert Counter(row[1] for row in rows[1:]) == Counter(progress["rejected_by_reason"])


def _multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        body += f"--b\r\ncontent-disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + b"--b--\r\n"


_CSV = real_rows(offset=19_000).write_csv().encode()
MULTIPART = {"content-type": "multipart/form-data; boundary=b"}
UPLOAD_REQUESTS = [
    Case(
        f"uploads-request-{name}",
        "ingest",
        "POST",
        "/v1/uploads",
        expect,
        content=content,
        headers=headers,
    )
    for name, content, headers, expect in (
        (
            "no-file",
            _multipart(("timezone", None, b"Europe/London")),
            MULTIPART,
            Refused(422, "file"),
        ),
        ("file-as-text", _multipart(("file", None, _CSV)), MULTIPART, Refused(422, "file")),
        ("no-parts", b"--b--\r\n", MULTIPART, Refused(422, "file")),
        ("no-boundary", _CSV, {"content-type": "multipart/form-data"}, Answered((400, 422))),
        ("not-multipart", _CSV, {"content-type": "text/csv"}, Refused(422, "file")),
        ("unterminated", _multipart(("file", "x.csv", _CSV))[:-8], MULTIPART, Answered((400, 422))),
        (
            "two-files",
            _multipart(("file", "a.csv", _CSV), ("file", "b.csv", b"")),
            MULTIPART,
            Answered((202, 422)),
        ),
    )
]


@pytest.mark.parametrize("case", UPLOAD_REQUESTS, ids=str)
def test_upload_requests(corpus: Corpus, case: Case) -> None:
    check(corpus.stack, case)


def test_healthy_after_uploads(corpus: Corpus) -> None:
    healthy(corpus)


# --- reads -------------------------------------------------------------------------------------

# Path segments as a client could send them (already percent-encoded where they must be).
HOSTILE_SEGMENTS = {
    "unknown": "nobody",
    "dotdot": "%2E%2E",
    "slash": "a%2Fb",
    "nul": "17850%00",
    "esc": "%1B%5B2J",
    "rlo": "%E2%80%AE05871",
    "encoded-surrogate": "%ED%A0%80",
    "invalid-utf8": "%FF%FE",
    "unicode": "%E5%AE%A2%E6%88%B7",
    "formula": "%3Dcmd%7C'%20%2FC%20calc'!A0",
    "8k-chars": "7" * 8_000,
    "sql": "1'%20OR%20'1'%3D'1",
    "spaces": "%20%20",
}


def _read_cases() -> list[Case]:
    cases: list[Case] = []
    lost = Answered((404,))  # an unknown id and an unmatched path are both 404 naming a field
    for name, segment in HOSTILE_SEGMENTS.items():
        cases += [
            Case(
                f"reads-features-{name}",
                "features",
                "GET",
                f"/v1/customers/{segment}/features",
                lost,
            ),
            Case(
                f"reads-scoring-features-{name}",
                "scoring",
                "GET",
                f"/v1/customers/{segment}/features",
                lost,
            ),
            Case(f"reads-score-{name}", "scoring", "GET", f"/v1/customers/{segment}/score", lost),
            Case(f"reads-run-{name}", "trainer", "GET", f"/v1/runs/{segment}", lost),
            Case(f"reads-upload-{name}", "ingest", "GET", f"/v1/uploads/{segment}", lost),
        ]
    erasures: dict[str, Expect] = {
        "nul": Refused(422, "customer_id"),
        "esc": Refused(422, "customer_id"),
        "rlo": Refused(422, "customer_id"),
        "8k-chars": Refused(422, "customer_id"),
        "slash": Refused(404, "path"),
        # Decoded with U+FFFD: a printable id nobody has; erasing nobody is a no-op request.
        "encoded-surrogate": Answered((202,)),
        "invalid-utf8": Answered((202,)),
    }
    for name, expect in erasures.items():
        cases.append(
            Case(
                f"reads-erase-{name}",
                "scoring",
                "DELETE",
                f"/v1/customers/{HOSTILE_SEGMENTS[name]}",
                expect,
            )
        )
    cases.append(
        Case(
            "reads-features-real-customer",
            "features",
            "GET",
            "/v1/customers/corpus-sentinel/features",
            Answered((200,)),
        )
    )
    ok = Answered((200,))
    lists = {
        "limit-0": ({"limit": 0}, Refused(422, "limit")),
        "limit-negative": ({"limit": -1}, Refused(422, "limit")),
        "limit-1e9": ({"limit": 10**9}, Refused(422, "limit")),
        "limit-10e400": ({"limit": 10**400}, Refused(422, "limit")),
        "limit-text": ({"limit": "ten"}, Refused(422, "limit")),
        "limit-float": ({"limit": 1.5}, Refused(422, "limit")),
        "limit-max": ({"limit": 10_000}, ok),
        "cursor-garbage": ({"cursor": "garbage"}, Refused(422, "cursor")),
        "cursor-base64-json": (
            {"cursor": base64.urlsafe_b64encode(b'{"after": [1e308, "x"]}').decode()},
            Refused(422, "cursor"),
        ),
        "cursor-base64-null": (
            {"cursor": base64.urlsafe_b64encode(b"null").decode()},
            Refused(422, "cursor"),
        ),
        "cursor-nul": ({"cursor": "\x00"}, Refused(422, "cursor")),
        "cursor-5k": ({"cursor": "A" * 5_000}, Refused(422, "cursor")),
        "cursor-empty": ({"cursor": ""}, Refused(422, "cursor")),
        "sort-unknown": ({"sort": "age"}, Refused(422, "sort")),
        "sort-empty": ({"sort": ""}, Refused(422, "sort")),
        "sort-sql": ({"sort": "customer_id; DROP TABLE x"}, Refused(422, "sort")),
        "value_tier-list": ({"value_tier": "High,VIP"}, ok),
        "value_tier-repeated": ([("value_tier", "High"), ("value_tier", "VIP")], ok),
        "value_tier-empty-entry": ({"value_tier": "VIP,,"}, Refused(422, "value_tier")),
        "value_tier-unknown": ({"value_tier": "VIP,gold"}, Refused(422, "value_tier")),
        "value_tier-empty": ({"value_tier": ""}, Refused(422, "value_tier")),
        "value_tier-1000": ({"value_tier": ",".join(["VIP"] * 1000)}, ok),
        "risk_band-unknown": ({"risk_band": "severe"}, Refused(422, "risk_band")),
        "risk_band-nul": ({"risk_band": "high\x00"}, Refused(422, "risk_band")),
        "min_ltv-1e308": ({"min_ltv": "1e308"}, ok),
        "min_ltv-1e309": ({"min_ltv": "1e309"}, Refused(422, "min_ltv")),
        "min_ltv-NaN": ({"min_ltv": "NaN"}, Refused(422, "min_ltv")),
        "min_ltv-inf": ({"min_ltv": "inf"}, Refused(422, "min_ltv")),
        "min_ltv-negative": ({"min_ltv": "-1"}, Refused(422, "min_ltv")),
        "min_ltv-text": ({"min_ltv": "lots"}, Refused(422, "min_ltv")),
        "segment-unknown": ({"segment": "Whales"}, Refused(422, "segment")),
        "segment-300-chars": ({"segment": "S" * 300}, Refused(422, "segment")),
        "segment-nul": ({"segment": "Champions\x00"}, Refused(422, "segment")),
        "unknown-parameter": ({"tenant": "other"}, ok),
    }
    for name, (params, expect) in lists.items():
        cases.append(
            Case(f"reads-list-{name}", "scoring", "GET", "/v1/customers", expect, params=params)
        )
        if name.startswith(("limit-0", "cursor-garbage", "sort-unknown", "min_ltv-NaN")):
            cases.append(
                Case(
                    f"reads-list-csv-{name}",
                    "scoring",
                    "GET",
                    "/v1/customers",
                    expect,
                    params=params,
                    headers={"accept": "text/csv"},
                )
            )
    for name, params, expect in (
        ("limit-0", {"limit": 0}, Refused(422, "limit")),
        ("limit-1e9", {"limit": 10**9}, Refused(422, "limit")),
        ("limit-text", {"limit": "all"}, Refused(422, "limit")),
    ):
        cases.append(
            Case(f"reads-runs-{name}", "trainer", "GET", "/v1/runs", expect, params=params)
        )
    cases += [
        Case(
            "reads-segments-junk-query", "scoring", "GET", "/v1/segments", ok, params={"x": "\x00"}
        ),
        Case("reads-model-junk-query", "scoring", "GET", "/v1/model", ok, params={"v": "1e308"}),
        Case("reads-mapping", "ingest", "GET", "/v1/mappings/default", Answered((200, 404))),
        Case(
            "reads-rejects-unknown-upload",
            "ingest",
            "GET",
            "/v1/uploads/nobody/rejects.csv",
            Refused(404, "upload_id"),
        ),
        Case(
            "reads-method-not-allowed", "scoring", "PATCH", "/v1/customers", Refused(405, "method")
        ),
        Case("reads-no-such-route", "features", "GET", "/v1/customers", Refused(404, "path")),
        Case(
            "reads-repeated-limit",
            "scoring",
            "GET",
            "/v1/customers",
            Refused(422, "limit"),  # the last one counts
            params=[("limit", "1"), ("limit", "0")],
        ),
    ]
    # Keys a careless or hostile client sends: never a 5xx, always the Authorization field.
    for name, value in {
        "empty": "",
        "bearer-only": "Bearer",
        "bearer-spaces": "Bearer   no-such-key",
        "basic": "Basic ZTJlLWtleTo=",
        "10k-key": "Bearer " + "k" * 10_000,
        "key-of-another-prefix": "Bearer e2e-key-but-longer",
        "latin1-key": "Bearer cl\xe9".encode("latin-1"),
    }.items():
        for service, path in (
            ("scoring", "/v1/customers"),
            ("features", "/v1/customers/17850/features"),
            ("trainer", "/v1/runs"),
            ("ingest", "/v1/mappings/default"),
        ):
            cases.append(
                Case(
                    f"reads-auth-{name}-{service}",
                    service,
                    "GET",
                    path,
                    Refused(401, "Authorization"),
                    headers={"Authorization": value},
                )
            )
    retrain = ("trainer", "POST", "/v1/retrain")
    cases += [
        Case(
            "reads-retrain-reason-nul", *retrain, Refused(422, "reason"), body={"reason": "a\x00"}
        ),
        Case(
            "reads-retrain-reason-long",
            *retrain,
            Refused(422, "reason"),
            body={"reason": "r" * 501},
        ),
        Case(
            "reads-retrain-cutoff-0",
            *retrain,
            Refused(422, "cutoff_every_days"),
            body={"cutoff_every_days": 0},
        ),
        Case(
            "reads-retrain-cutoff-text",
            *retrain,
            Refused(422, "cutoff_every_days"),
            body={"cutoff_every_days": "30"},
        ),
        Case(
            "reads-retrain-cutoff-1e308",
            *retrain,
            Refused(422, "cutoff_every_days"),
            body={"cutoff_every_days": 1e308},
        ),
        Case(
            "reads-retrain-unknown-key", *retrain, Refused(422, "tenant"), body={"tenant": "other"}
        ),
        Case("reads-retrain-array", *retrain, Refused(422, "body"), body=[{"reason": "x"}]),
        Case("reads-retrain-not-json", *retrain, Refused(422, "body"), content=b"reason=x"),
    ]
    return cases


READS = _read_cases()


@pytest.mark.parametrize("case", READS, ids=str)
def test_reads(corpus: Corpus, case: Case) -> None:
    check(corpus.stack, case)


def test_customers_named_as_formulas_export_as_text(corpus: Corpus) -> None:
    """The formula customer ids the orders class had accepted reach scoring through features;
    the CSV action list carries them, and every other text cell, inert."""
    listing = f"{url(corpus.stack, 'scoring')}/v1/customers"
    params = {"limit": 10_000, "sort": "customer_id"}
    csv_headers = {**auth(), "accept": "text/csv"}

    def exported() -> list[dict[str, str]]:
        response = httpx.get(listing, params=params, headers=csv_headers, timeout=30)
        assert response.status_code == 200, response.text[:300]
        return list(csv.DictReader(io.StringIO(response.text, newline="")))

    wanted = {"'" + formula for formula in FORMULAS}
    wait_for(
        lambda: wanted <= {row["customer_id"] for row in exported()},
        timeout=60,
        what="the formula customers in the CSV export",
    )
    rows = exported()
    for row in rows:
        assert not any(cell.startswith(UNSAFE_START) for cell in row.values()), row
    listed = httpx.get(listing, params=params, headers=auth(), timeout=30).json()
    assert set(FORMULAS) <= {c["customer_id"] for c in listed["customers"]}
    assert listed["total"] == len(rows)


def test_healthy_after_reads(corpus: Corpus) -> None:
    healthy(corpus)


# --- scores ------------------------------------------------------------------------------------


def _score_cases() -> list[Case]:
    score = ("scoring", "POST", "/v1/score")
    ok = Answered((200,))
    cases = [
        Case("scores-empty-object", *score, Refused(422, "body"), body={}),
        Case("scores-empty-ids", *score, Refused(422, "customer_ids"), body={"customer_ids": []}),
        Case("scores-empty-vectors", *score, Refused(422, "customers"), body={"customers": []}),
        Case("scores-null-ids", *score, Refused(422, None), body={"customer_ids": None}),
        Case(
            "scores-ids-text", *score, Refused(422, "customer_ids"), body={"customer_ids": "17850"}
        ),
        Case(
            "scores-both",
            *score,
            Refused(422, None),
            body={"customer_ids": ["a"], "customers": [{"features": {}}]},
        ),
        Case(
            "scores-1001-ids",
            *score,
            Refused(413, "customer_ids"),
            body={"customer_ids": ["17850"] * 1001},
        ),
        Case(
            "scores-unknown-key",
            *score,
            Refused(422, "tenant_id"),
            body={"customer_ids": ["1"], "tenant_id": "other"},
        ),
        Case(
            "scores-reasons-text",
            *score,
            Refused(422, "include_reasons"),
            body={"customer_ids": ["1"], "include_reasons": "yes"},
        ),
        Case(
            "scores-unknown-ids",
            *score,
            ok,
            body={"customer_ids": ["nobody", "=cmd|' /C calc'!A0"]},
        ),
        Case("scores-body-array", *score, Refused(422, "body"), body=[{"customer_ids": ["1"]}]),
        Case("scores-body-not-json", *score, Refused(422, "body"), content=b"customer_ids=1"),
    ]
    for name, value in {
        **BAD_IDS,
        "number": 17850,
        "null": None,
        "boolean": True,
        "object": {"id": "17850"},
        "list": ["17850"],
        "empty": "",
        "whitespace": "  ",
    }.items():
        cases.append(
            Case(
                f"scores-id-{name}",
                *score,
                Refused(422, "customer_ids.0"),
                body={"customer_ids": [value]},
            )
        )
    return cases


SCORES = _score_cases()

# Vectors need the champion's feature names: built from the fixture's real vector.
VECTOR_CHANGES: dict[str, tuple[Callable[[dict], Any], Expect]] = {
    "real": (lambda v: v, Answered((200,))),
    "1e308": (lambda v: v | {"monetary": 1e308}, Refused(422, "customers.0.features.monetary")),
    "-1e308": (
        lambda v: v | {"recency_days": -1e308},
        Refused(422, "customers.0.features.recency_days"),
    ),
    "NaN": (lambda v: v | {"frequency": math.nan}, Refused(422, "customers.0.features.frequency")),
    "Infinity": (
        lambda v: v | {"frequency": math.inf},
        Refused(422, "customers.0.features.frequency"),
    ),
    "1e16": (lambda v: v | {"spend_90d": 1e16}, Refused(422, "customers.0.features.spend_90d")),
    "10e400-int": (
        lambda v: v | {"frequency": 10**400},
        Refused(422, "customers.0.features.frequency"),
    ),
    "text": (lambda v: v | {"frequency": "3"}, Refused(422, "customers.0.features.frequency")),
    "boolean": (lambda v: v | {"frequency": True}, Refused(422, "customers.0.features.frequency")),
    "null": (lambda v: v | {"frequency": None}, Refused(422, "customers.0.features.frequency")),
    "missing": (
        lambda v: {k: x for k, x in v.items() if k != "frequency"},
        Refused(422, "customers.0.features.frequency"),
    ),
    "extra": (lambda v: v | {"shoe_size": 44}, Refused(422, "customers.0.features.shoe_size")),
    "all-zero": (lambda v: dict.fromkeys(v, 0.0), Answered((200, 422))),
    "all-1e15": (lambda v: dict.fromkeys(v, 1e15), Answered((200, 422))),
    "all-minus-1e15": (lambda v: dict.fromkeys(v, -1e15), Answered((200, 422))),
}


@pytest.mark.parametrize("case", SCORES, ids=str)
def test_scores(corpus: Corpus, case: Case) -> None:
    check(corpus.stack, case)


@pytest.mark.parametrize("name", VECTOR_CHANGES)
def test_scores_vectors(corpus: Corpus, name: str) -> None:
    change, expect = VECTOR_CHANGES[name]
    body = {"customers": [{"customer_id": corpus.customers[0], "features": change(corpus.vector)}]}
    check(
        corpus.stack,
        Case(f"scores-vector-{name}", "scoring", "POST", "/v1/score", expect, body=body),
    )


def test_scores_vectors_over_the_limit_and_duplicate_ids(corpus: Corpus) -> None:
    vectors = [{"features": corpus.vector}] * 1001
    check(
        corpus.stack,
        Case(
            "scores-1001-vectors",
            "scoring",
            "POST",
            "/v1/score",
            Refused(413, "customers"),
            body={"customers": vectors},
        ),
    )
    twice = corpus.customers[:3] * 2
    response = send(
        corpus.stack,
        Case(
            "scores-duplicates",
            "scoring",
            "POST",
            "/v1/score",
            Answered((200,)),
            body={"customer_ids": twice},
        ),
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["customer_id"] for r in results] == twice and all(r["found"] for r in results)
    assert results[0]["score"] == results[3]["score"]


def test_healthy_after_scores(corpus: Corpus) -> None:
    healthy(corpus)


# --- campaigns ---------------------------------------------------------------------------------

PLAN = {"budget": 2_000, "cost_per_contact": 5, "save_rate": 0.25, "discount": 0.1}


def _campaign_cases() -> list[Case]:
    plan = ("scoring", "POST", "/v1/campaigns/plan")
    ok = Answered((200,))
    changes: dict[str, tuple[dict, Expect]] = {
        "real": ({}, ok),
        "budget-1e308-cost-1e-308": (
            {"budget": 1e308, "cost_per_contact": 1e-308},
            Refused(422, "cost_per_contact"),
        ),
        "budget-1e308": ({"budget": 1e308}, ok),
        "budget-0": ({"budget": 0}, ok),
        "budget-negative": ({"budget": -1}, Refused(422, "budget")),
        "budget-NaN": ({"budget": math.nan}, Refused(422, "budget")),
        "budget-Infinity": ({"budget": math.inf}, Refused(422, "budget")),
        "budget-10e400-int": ({"budget": 10**400}, Refused(422, "budget")),
        "budget-text": ({"budget": "2000"}, Refused(422, "budget")),
        "budget-boolean": ({"budget": True}, Refused(422, "budget")),
        "budget-null": ({"budget": None}, Refused(422, "budget")),
        "cost-0": ({"cost_per_contact": 0}, Refused(422, "cost_per_contact")),
        "cost-1e-308": ({"cost_per_contact": 1e-308}, Refused(422, "cost_per_contact")),
        "cost-1e308": ({"cost_per_contact": 1e308}, ok),
        "cost-negative": ({"cost_per_contact": -5}, Refused(422, "cost_per_contact")),
        "save_rate-1.5": ({"save_rate": 1.5}, Refused(422, "save_rate")),
        "save_rate-negative": ({"save_rate": -0.1}, Refused(422, "save_rate")),
        "save_rate-NaN": ({"save_rate": math.nan}, Refused(422, "save_rate")),
        "save_rate-1": ({"save_rate": 1}, ok),
        "discount-2": ({"discount": 2}, Refused(422, "discount")),
        "discount-1": ({"discount": 1}, Refused(422, "discount")),
        "discount-negative": ({"discount": -0.5}, Refused(422, "discount")),
        "contacts_limit-1e9": ({"contacts_limit": 10**9}, Refused(422, "contacts_limit")),
        "contacts_limit-0": ({"contacts_limit": 0}, Refused(422, "contacts_limit")),
        "contacts_limit-text": ({"contacts_limit": "10"}, Refused(422, "contacts_limit")),
        "contacts_limit-float": ({"contacts_limit": 10.5}, Refused(422, "contacts_limit")),
        "contacts_limit-max": ({"contacts_limit": 10_000}, ok),
        "unknown-field": ({"currency": "GBP"}, Refused(422, "currency")),
        "filters-unknown": ({"filters": {"country": "UK"}}, Refused(422, "filters.country")),
        "filters-null": ({"filters": None}, Refused(422, "filters")),
        "filters-list": ({"filters": ["high"]}, Refused(422, "filters")),
        "filters-risk_band-unknown": (
            {"filters": {"risk_band": "severe"}},
            Refused(422, "filters.risk_band"),
        ),
        "filters-risk_band-empty": (
            {"filters": {"risk_band": []}},
            Refused(422, "filters.risk_band"),
        ),
        "filters-risk_band-list": ({"filters": {"risk_band": ["high", "medium"]}}, ok),
        "filters-value_tier-unknown": (
            {"filters": {"value_tier": ["gold"]}},
            Refused(422, "filters.value_tier"),
        ),
        "filters-segment-unknown": (
            {"filters": {"segment": "Whales"}},
            Refused(422, "filters.segment"),
        ),
        "filters-segment-300": (
            {"filters": {"segment": "S" * 300}},
            Refused(422, "filters.segment"),
        ),
        "filters-min_ltv-NaN": (
            {"filters": {"min_ltv": math.nan}},
            Refused(422, "filters.min_ltv"),
        ),
        "filters-min_ltv-1e308": ({"filters": {"min_ltv": 1e308}}, ok),
    }
    cases = [
        Case(f"campaigns-{name}", *plan, expect, body=PLAN | change)
        for name, (change, expect) in changes.items()
    ]
    cases += [
        Case(
            "campaigns-missing-budget",
            *plan,
            Refused(422, "budget"),
            body={k: v for k, v in PLAN.items() if k != "budget"},
        ),
        Case("campaigns-empty", *plan, Refused(422, None), body={}),
        Case("campaigns-array", *plan, Refused(422, "body"), body=[PLAN]),
        Case("campaigns-not-json", *plan, Refused(422, "body"), content=b"budget=100"),
    ]
    return cases


CAMPAIGNS = _campaign_cases()


@pytest.mark.parametrize("case", CAMPAIGNS, ids=str)
def test_campaigns(corpus: Corpus, case: Case) -> None:
    check(corpus.stack, case)


def test_campaign_with_a_segment_of_the_model(corpus: Corpus) -> None:
    body = PLAN | {"filters": {"segment": corpus.segment}}
    check(
        corpus.stack,
        Case(
            "campaigns-real-segment",
            "scoring",
            "POST",
            "/v1/campaigns/plan",
            Answered((200,)),
            body=body,
        ),
    )


def test_healthy_after_campaigns(corpus: Corpus) -> None:
    healthy(corpus)


# --- mappings ----------------------------------------------------------------------------------


def _mapping_cases() -> list[Case]:
    put = ("ingest", "PUT", "/v1/mappings/default")

    def column(name: str, value: Any) -> dict:
        return {"mapping": {**UCI_MAPPING, name: value}}

    changes: dict[str, tuple[Any, Expect]] = {
        "empty": ({}, Refused(422, "mapping")),
        "null-mapping": ({"mapping": None}, Refused(422, "mapping")),
        "timezone-only": ({"timezone": "Europe/London"}, Refused(422, "mapping")),
        "empty-mapping": ({"mapping": {}}, Refused(422, "mapping")),
        "mapping-list": ({"mapping": ["CustomerID"]}, Refused(422, "mapping")),
        "mapping-text": ({"mapping": "CustomerID"}, Refused(422, "mapping")),
        "unknown-canonical": (column("loyalty_tier", "Country"), Refused(422, "loyalty_tier")),
        "both-price-and-total": (column("order_total", "UnitPrice"), Refused(422, "mapping")),
        "missing-required": ({"mapping": {"customer_id": "CustomerID"}}, Refused(422, "mapping")),
        "column-nul": (column("customer_id", "Customer\x00ID"), Refused(422, "customer_id")),
        "column-esc": (column("customer_id", "\x1b[31mCustomerID"), Refused(422, "customer_id")),
        "column-rlo": (column("order_id", "\u202eInvoiceNo"), Refused(422, "order_id")),
        "column-10k": (column("product_id", "S" * 10_000), Refused(422, "product_id")),
        "column-empty": (column("customer_id", ""), Refused(422, "customer_id")),
        "column-number": (column("customer_id", 7), Refused(422, "customer_id")),
        "column-object": (
            column("customer_id", {"name": "CustomerID"}),
            Refused(422, "customer_id"),
        ),
        "column-surrogate": (column("customer_id", "\ud800"), Refused(422, "customer_id")),
        "date_format-garbage": (column("date_format", "dd/mm/yyyy"), Refused(422, "date_format")),
        "date_format-nul": (column("date_format", "%d\x00%m"), Refused(422, "date_format")),
        "date_format-bad-directive": (column("date_format", "%Q %K"), Refused(422, "date_format")),
        "timezone-unknown": (
            {**column("country", "Country"), "timezone": "Mars/Olympus"},
            Refused(422, "timezone"),
        ),
        "timezone-traversal": (
            {**column("country", "Country"), "timezone": "../../etc/passwd"},
            Refused(422, "timezone"),
        ),
        "timezone-posixrules": (
            {**column("country", "Country"), "timezone": "posixrules"},
            Refused(422, "timezone"),
        ),
        "timezone-number": (
            {**column("country", "Country"), "timezone": 1},
            Refused(422, "timezone"),
        ),
        "unknown-top-level": (
            {**column("country", "Country"), "tenant": "other"},
            Refused(422, "tenant"),
        ),
        "body-array": ([column("country", "Country")], Refused(422, "body")),
        "valid": ({**column("country", "Country"), "timezone": "Europe/London"}, Answered((200,))),
    }
    return [
        Case(f"mappings-{name}", *put, expect, body=body)
        for name, (body, expect) in changes.items()
    ] + [Case("mappings-not-json", *put, Refused(422, "body"), content=b"mapping=x")]


MAPPINGS = _mapping_cases()


@pytest.mark.parametrize("case", MAPPINGS, ids=str)
def test_mappings(corpus: Corpus, case: Case) -> None:
    check(corpus.stack, case)


def test_healthy_after_mappings_and_the_mapping_is_the_valid_one(corpus: Corpus) -> None:
    mappings = f"{url(corpus.stack, 'ingest')}/v1/mappings/default"
    saved = httpx.get(mappings, headers=auth()).json()
    assert saved == {"mapping": {**UCI_MAPPING, "country": "Country"}, "timezone": "Europe/London"}
    # Orders are read with the saved timezone: still answered per order after the corpus.
    check(corpus.stack, order_case("after-mappings", lambda o: None, Accepted()))
    assert httpx.delete(mappings, headers=auth()).status_code == 204
    healthy(corpus)
