"""The ingest service as a process on the real broker: uploads, JSON orders, orders.raw, and
every bad input a retailer's export can bring."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from aiokafka import AIOKafkaProducer

from retention_cli.stack import Stack
from retention_ingest.file_ingest import ingest_file
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import OrderEvent, RejectedRecord, RetrainRequested, decode_event
from retention_shared.kafka import aiokafka_options, ensure_topics
from retention_shared.topics import Topics
from tests.features_service.support import read_to_end
from tests.ingest.workbook import write_xlsx
from tests.kafka_reading import read_until
from tests.real_orders import ONLINE_RETAIL
from tests.stack_support import auth, running_stack, url

pytestmark = pytest.mark.slow
SLICE = Path(__file__).resolve().parents[1] / "data" / "online_retail_slice.parquet"
# The first order of UCI Online Retail (invoice 536365), as canonical JSON.
FIRST_ORDER = {
    "order_id": "536365",
    "customer_id": "17850",
    "order_datetime": "2010-12-01T08:26:00",
    "lines": [
        {"product_id": "85123A", "quantity": 6, "unit_price": 2.55},
        {"product_id": "71053", "quantity": 6, "unit_price": 3.39},
    ],
    "country": "United Kingdom",
}


@pytest.fixture(scope="module")
def ingest(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("ingest")
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap, topic_prefix="ingest-svc.", data_dir=work / "data"
    )
    asyncio.run(ensure_topics(settings))
    with running_stack(
        settings,
        work / "ingest.log",
        services=("ingest",),
        RETENTION_MAX_UPLOAD_BYTES=str(8 * 1024 * 1024),
    ) as stack:
        yield stack


def topics(stack: Stack) -> Topics:
    return Topics.with_prefix(stack.settings.topic_prefix)


def upload(stack: Stack, path: Path, **form: str) -> httpx.Response:
    with path.open("rb") as file:
        return httpx.post(
            f"{url(stack, 'ingest')}/v1/uploads",
            files={"file": (path.name, file)},
            data=form,
            headers=auth(),
            timeout=60,
        )


def wait_done(stack: Stack, upload_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{url(stack, 'ingest')}/v1/uploads/{upload_id}", headers=auth()).json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.3)
    raise TimeoutError(status)


def test_whole_file_upload_publishes_what_the_cleaning_rules_give_and_again_the_same_ids(
    ingest: Stack, tmp_path: Path
) -> None:
    expected = ingest_file(ONLINE_RETAIL, tenant_id="default", source="expected", work_dir=tmp_path)
    expected_ids = set(expected.events().select("event_id").collect().to_series())

    first = upload(ingest, ONLINE_RETAIL)
    assert first.status_code == 202, first.text
    status = wait_done(ingest, first.json()["upload_id"])
    assert status["state"] == "done", status
    progress = status["progress"]
    assert progress["rows_read"] == 541_909
    assert progress["accepted"] + progress["rejected"] == progress["rows_read"]
    assert progress["rejected_by_reason"]["missing_customer_id"] == 135_080
    assert progress["orders_published"] == len(expected_ids)
    assert status["result"]["customers"] == 4372 - 1  # one customer only ever had a zero price
    assert status["result"]["first_order_at"].startswith("2010-12-01")

    records = asyncio.run(read_to_end(ingest.settings, topics(ingest).transactions))
    events = [decode_event(OrderEvent, r.value) for r in records]
    assert len(events) == len(expected_ids)
    assert {e.event_id for e in events} == expected_ids
    assert sum(e.total for e in events) == pytest.approx(expected.net_total, rel=1e-9)
    assert all(
        r.key == f"default:{e.customer_id}".encode() for r, e in zip(records, events, strict=True)
    )

    rejects = httpx.get(
        f"{url(ingest, 'ingest')}/v1/uploads/{first.json()['upload_id']}/rejects.csv",
        headers=auth(),
    )
    assert rejects.status_code == 200
    rejected_rows = pl.read_csv(rejects.content, infer_schema=False)
    assert rejected_rows.height == progress["rejected"]
    assert set(rejected_rows.get_column("reason")) == set(progress["rejected_by_reason"])

    # The same file again: the same event ids (downstream dedupes on them).
    second = upload(ingest, ONLINE_RETAIL)
    assert wait_done(ingest, second.json()["upload_id"])["state"] == "done"
    again = asyncio.run(read_to_end(ingest.settings, topics(ingest).transactions))
    assert len(again) == 2 * len(expected_ids)
    twice = Counter(decode_event(OrderEvent, r.value).event_id for r in again)
    assert set(twice) == expected_ids and set(twice.values()) == {2}

    retrains = asyncio.run(
        read_until(ingest.settings, topics(ingest).retrain_requests, lambda got: len(got) >= 2)
    )
    assert {decode_event(RetrainRequested, r.value).reason for r in retrains} == {"upload"}


def bad_file(tmp_path: Path, name: str) -> Path:
    frame = pl.read_parquet(SLICE).head(200)
    path = tmp_path / name
    if name == "truncated.csv":
        text = frame.write_csv()
        path.write_text(text[: len(text) // 2].rsplit(",", 1)[0] + ',"unterminated')
    elif name == "latin1.csv":
        path.write_bytes(frame.write_csv().encode() + "X,Y,CAF\xc9\n".encode("latin-1"))
    elif name == "empty.csv":
        path.write_bytes(b"")
    elif name == "empty.xlsx":
        write_xlsx(frame.head(0), path)
    elif name == "semicolon_declared_as_comma.csv":
        path.write_text(frame.write_csv(separator=";"))
    elif name == "notes.bin":
        path.write_bytes(b"\x00\x01\x02 this is not a table \xff" * 10)
    return path


def test_problems_found_while_reading_fail_the_upload_with_the_reason(
    ingest: Stack, tmp_path: Path
) -> None:
    """A truncated CSV looks fine in its header; the upload is accepted and then fails, saying why."""
    response = upload(ingest, bad_file(tmp_path, "truncated.csv"))
    assert response.status_code == 202, response.text
    status = wait_done(ingest, response.json()["upload_id"])
    assert status["state"] == "failed"
    assert status["error"]["code"] == "truncated_file"
    assert status["error"]["problem"]


@pytest.mark.parametrize(
    ("name", "form", "status", "code"),
    [
        ("latin1.csv", {}, 422, "not_utf8"),
        ("empty.csv", {}, 422, "empty_file"),
        ("empty.xlsx", {}, 422, "empty_sheet"),
        ("notes.bin", {}, 415, "unknown_format"),
        (
            "semicolon_declared_as_comma.csv",
            {
                "mapping": json.dumps(
                    {
                        "customer_id": "Customer",
                        "order_id": "InvoiceNo",
                        "order_datetime": "InvoiceDate",
                        "product_id": "StockCode",
                        "quantity": "Quantity",
                        "unit_price": "UnitPrice",
                    }
                )
            },
            422,
            "missing_column",
        ),
        ("empty.csv", {"timezone": "Mars/Olympus"}, 422, "unknown_timezone"),
    ],
)
def test_bad_files_get_a_clear_4xx_naming_the_problem(
    ingest: Stack, tmp_path: Path, name: str, form: dict[str, str], status: int, code: str
) -> None:
    response = upload(ingest, bad_file(tmp_path, name), **form)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code
    assert detail["problem"]


def test_a_file_over_the_size_limit_is_413(ingest: Stack, tmp_path: Path) -> None:
    big = tmp_path / "big.csv.gz"
    big.write_bytes(gzip.compress(b"x" * 100) + b"\0" * (9 * 1024 * 1024))
    response = upload(ingest, big)
    assert response.status_code == 413
    assert response.json()["detail"]["field"] == "body"


def test_a_mapped_upload_with_a_saved_timezone_and_status_counts(
    ingest: Stack, tmp_path: Path
) -> None:
    frame = pl.read_parquet(SLICE).rename({"CustomerID": "client", "InvoiceNo": "invoice"})
    path = tmp_path / "export.csv"
    frame.with_columns(pl.col("InvoiceDate").dt.strftime("%d/%m/%Y %H:%M")).write_csv(
        path, separator=";"
    )
    saved = httpx.put(
        f"{url(ingest, 'ingest')}/v1/mappings/default",
        headers=auth(),
        json={
            "mapping": {
                "customer_id": "client",
                "order_id": "invoice",
                "order_datetime": "InvoiceDate",
                "product_id": "StockCode",
                "quantity": "Quantity",
                "unit_price": "UnitPrice",
                "country": "Country",
            },
            "timezone": "Europe/London",
        },
    )
    assert saved.status_code == 200, saved.text
    response = upload(ingest, path)
    assert response.status_code == 202, response.text
    status = wait_done(ingest, response.json()["upload_id"])
    assert status["state"] == "done", status
    assert status["result"]["date_format"]["order"] == "day_first"
    assert status["progress"]["accepted"] + status["progress"]["rejected"] == frame.height
    # Nobody else's key sees this upload.
    other = httpx.get(
        f"{url(ingest, 'ingest')}/v1/uploads/{response.json()['upload_id']}",
        headers=auth("e2e-other"),
    )
    assert other.status_code == 404
    httpx.put(f"{url(ingest, 'ingest')}/v1/mappings/default", headers=auth(), json={})


def test_json_orders_are_answered_per_order_with_reasons_and_fields(ingest: Stack) -> None:
    orders = [
        {
            "order_id": "T536365",
            "customer_id": 17850.0,
            "order_datetime": "2010-12-01T08:26:00",
            "lines": [
                {"product_id": "85123A", "quantity": 6, "unit_price": 2.55},
                {"product_id": "71053", "quantity": 0, "unit_price": 3.39},
            ],
        },
        {
            "order_id": "CT536379",
            "customer_id": "14527",
            "order_datetime": "2010-12-01T09:41:00+00:00",
            "lines": [{"product_id": "D", "quantity": -1, "unit_price": 27.5}],
        },
        {
            "order_id": "T536414",
            "customer_id": None,
            "order_datetime": "2010-12-01T11:52:00",
            "lines": [{"product_id": "22139", "quantity": 56, "unit_price": 0}],
        },
        {
            "order_id": "T536415",
            "customer_id": "12583",
            "order_datetime": "yesterday",
            "lines": [{"product_id": "22139", "quantity": 5, "unit_price": 1.0}],
        },
    ]
    response = httpx.post(
        f"{url(ingest, 'ingest')}/v1/orders", json={"orders": orders}, headers=auth()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    first, cancel, no_customer, bad_date = body["results"]
    assert first["status"] == "accepted" and first["problems"] == [
        {"code": "zero_quantity", "field": "lines.1.quantity"}
    ]
    assert cancel["status"] == "accepted"
    assert no_customer == {
        "index": 2,
        "order_id": "T536414",
        "status": "rejected",
        "event_ids": [],
        "problems": [{"code": "missing_customer_id", "field": "customer_id"}],
    }
    assert bad_date["problems"] == [
        {"code": "unparseable_order_datetime", "field": "order_datetime"}
    ]

    events = asyncio.run(
        read_until(
            ingest.settings,
            topics(ingest).transactions,
            lambda got: (
                {first["event_ids"][0], cancel["event_ids"][0]}
                <= {decode_event(OrderEvent, r.value).event_id for r in got}
            ),
        )
    )
    published = {e.event_id: e for e in (decode_event(OrderEvent, r.value) for r in events)}
    assert published[first["event_ids"][0]].total == pytest.approx(15.3)
    assert published[first["event_ids"][0]].customer_id == "17850"
    assert published[cancel["event_ids"][0]].kind == "cancellation"
    assert published[cancel["event_ids"][0]].total == pytest.approx(-27.5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"orders": [{"order_id": "1", "lines": "none"}]}, "orders.0.lines"),
        ({"order_id": "1", "lines": [], "customer_id": "2"}, "lines"),
        (
            {
                "order_id": "1",
                "lines": [{"product_id": "p", "quantity": 1, "unit_price": 1, "colour": "red"}],
            },
            "lines.0.colour",
        ),
    ],
)
def test_malformed_order_bodies_are_422_naming_the_field(
    ingest: Stack, body: dict, field: str
) -> None:
    response = httpx.post(f"{url(ingest, 'ingest')}/v1/orders", json=body, headers=auth())
    assert response.status_code == 422
    assert field in [problem["field"] for problem in response.json()["detail"]]


def test_a_batch_over_the_limit_is_413(ingest: Stack) -> None:
    response = httpx.post(
        f"{url(ingest, 'ingest')}/v1/orders", json={"orders": [FIRST_ORDER] * 1001}, headers=auth()
    )
    assert response.status_code == 413
    assert response.json()["detail"]["field"] == "orders"


def test_orders_raw_records_in_the_tenants_columns(ingest: Stack) -> None:
    good = {
        "InvoiceNo": "R581587",
        "CustomerID": 12680.0,
        "InvoiceDate": "2011-12-09 12:50:00",
        "Country": "France",
        "lines": [
            {"StockCode": "22613", "Quantity": 12, "UnitPrice": 0.85},
            {"StockCode": "22899", "Quantity": 6, "UnitPrice": 0},
        ],
    }
    bad = {
        "InvoiceNo": "R581588",
        "CustomerID": None,
        "InvoiceDate": "2011-12-09 12:51:00",
        "StockCode": "22138",
        "Quantity": 3,
        "UnitPrice": 4.95,
        "Country": "France",
    }

    async def send() -> None:
        producer = AIOKafkaProducer(**aiokafka_options(ingest.settings))
        await producer.start()
        try:
            for record, headers in (
                (good, [("tenant", b"default")]),
                (bad, [("tenant", b"default")]),
                (b"not json", [("tenant", b"default")]),
                (good, []),
            ):
                value = record if isinstance(record, bytes) else json.dumps(record).encode()
                await producer.send_and_wait(topics(ingest).orders_raw, value, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(send())
    rejected = asyncio.run(
        read_until(ingest.settings, topics(ingest).transactions_rejected, lambda got: len(got) >= 4)
    )
    reasons = sorted(
        r.code for record in rejected for r in decode_event(RejectedRecord, record.value).reasons
    )
    assert reasons == ["missing_customer_id", "missing_tenant", "non_positive_price", "not_json"], [
        decode_event(RejectedRecord, r.value).reasons for r in rejected
    ]
    transactions = asyncio.run(
        read_until(
            ingest.settings,
            topics(ingest).transactions,
            lambda got: any(decode_event(OrderEvent, r.value).order_id == "R581587" for r in got),
        )
    )
    event = next(
        e
        for e in (decode_event(OrderEvent, r.value) for r in transactions)
        if e.order_id == "R581587"
    )
    assert (
        event.customer_id == "12680"
        and event.total == pytest.approx(10.2)
        and len(event.lines) == 1
    )


def test_broker_down_answers_503_and_reports_nothing_accepted(tmp_path: Path) -> None:
    with EmbeddedBroker(Settings()) as own_broker:
        settings = Settings(kafka_bootstrap=own_broker.bootstrap, data_dir=tmp_path / "data")
        with running_stack(
            settings,
            tmp_path / "ingest.log",
            services=("ingest",),
            RETENTION_PUBLISH_TIMEOUT_SECONDS="3",
        ) as stack:
            own_broker.stop()
            response = httpx.post(
                f"{url(stack, 'ingest')}/v1/orders", json=FIRST_ORDER, headers=auth(), timeout=30
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert "accepted" not in response.json()
            metrics = httpx.get(f"{url(stack, 'ingest')}/metrics").text
            assert "retention_ingest_orders_published_total{" not in metrics
