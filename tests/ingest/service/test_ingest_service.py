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
from retention_shared.events import (
    OrderEvent,
    RejectedRecord,
    RetrainRequested,
    UploadCompleted,
    decode_event,
)
from retention_shared.kafka.clients import aiokafka_options, ensure_topics
from retention_shared.topics import Topics
from tests.support.features_service import read_to_end
from tests.support.kafka_reading import read_until
from tests.support.paths import TEST_DATA
from tests.support.problems import field_problems, first_problem, problem_of
from tests.support.real_orders import ONLINE_RETAIL
from tests.support.stack import auth, running_stack, url
from tests.support.workbook import write_xlsx

pytestmark = pytest.mark.slow
UNPACKED_LIMIT = 80_000_000
ROWS_LIMIT = 600_000
SLICE = TEST_DATA / "online_retail_slice.parquet"
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
        # Above online_retail.parquet (541,909 rows, 4 MB declared), below the upload tests' bombs.
        RETENTION_MAX_UPLOAD_UNPACKED_BYTES=str(UNPACKED_LIMIT),
        RETENTION_MAX_UPLOAD_ROWS=str(ROWS_LIMIT),
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
    # The reason code is an extension member; the problem names the file's fault in `detail`.
    assert problem_of(response).detail
    assert response.json()["code"] == code


def test_a_file_over_the_size_limit_is_413(ingest: Stack, tmp_path: Path) -> None:
    big = tmp_path / "big.csv.gz"
    big.write_bytes(gzip.compress(b"x" * 100) + b"\0" * (9 * 1024 * 1024))
    response = upload(ingest, big)
    assert response.status_code == 413
    assert first_problem(response)[0] == "body"


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
    forgotten = httpx.delete(f"{url(ingest, 'ingest')}/v1/mappings/default", headers=auth())
    assert forgotten.status_code == 204


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
    assert field in [found for found, _ in field_problems(response)]


def test_a_batch_over_the_limit_is_413(ingest: Stack) -> None:
    response = httpx.post(
        f"{url(ingest, 'ingest')}/v1/orders", json={"orders": [FIRST_ORDER] * 1001}, headers=auth()
    )
    assert response.status_code == 413
    assert first_problem(response)[0] == "orders"


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
            # Events may have reached the broker before it stopped answering: not "nothing".
            problem = problem_of(response).detail
            assert "not confirmed; retry with the same order ids, duplicates are ignored" in problem
            assert "nothing was accepted" not in problem
            metrics = httpx.get(f"{url(stack, 'ingest')}/metrics").text
            assert "retention_ingest_orders_published_total{" not in metrics


# --- hostile input at the edge ------------------------------------------------------------


def post_orders(stack: Stack, body: object) -> httpx.Response:
    # json.dumps escapes a lone surrogate as JSON allows ("\\ud800"); httpx's json= cannot.
    return httpx.post(
        f"{url(stack, 'ingest')}/v1/orders",
        content=json.dumps(body).encode(),
        headers={**auth(), "content-type": "application/json"},
        timeout=60,
    )


def test_hostile_values_are_rejected_with_the_field_and_never_published(ingest: Stack) -> None:
    """Each was answered 200 accepted (or 500, or 503) and then stalled or broke consumers."""
    hostile = {
        "lone surrogate": ({"customer_id": "\ud800"}, "invalid_customer_id", "customer_id"),
        "257 characters": ({"customer_id": "7" * 257}, "invalid_customer_id", "customer_id"),
        "a million characters": (
            {"customer_id": "7" * 1_000_000},
            "invalid_customer_id",
            "customer_id",
        ),
        "NUL": ({"customer_id": "17850\x00"}, "invalid_customer_id", "customer_id"),
        "ESC": ({"order_id": "\x1b[2J536365"}, "invalid_order_id", "order_id"),
        "RLO": ({"customer_id": "\u202e05871"}, "invalid_customer_id", "customer_id"),
        "2030": (
            {"order_datetime": "2030-01-01T00:00:00"},
            "future_order_datetime",
            "order_datetime",
        ),
        "1969": (
            {"order_datetime": "1969-07-20T20:17:00"},
            "order_datetime_too_old",
            "order_datetime",
        ),
        "1e308 x 1e308": (
            {"lines": [{"product_id": "85123A", "quantity": 1e308, "unit_price": 1e308}]},
            "quantity_out_of_range",
            "lines.0.quantity",
        ),
        "price 1e308": (
            {"lines": [{"product_id": "85123A", "quantity": 6, "unit_price": 1e308}]},
            "unit_price_out_of_range",
            "lines.0.unit_price",
        ),
        "1e6 x 1e6": (
            {"lines": [{"product_id": "85123A", "quantity": 1e6, "unit_price": 1e6}]},
            "order_total_out_of_range",
            "lines",
        ),
    }
    orders = [
        {**FIRST_ORDER, "order_id": f"H{index}", **values}
        for index, (values, _, _) in enumerate(hostile.values())
    ]
    sentinel = {**FIRST_ORDER, "order_id": "H-sentinel"}
    response = post_orders(ingest, {"orders": [*orders, sentinel]})
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, len(hostile))
    for (name, (_, code, field)), result in zip(hostile.items(), body["results"], strict=False):
        assert result["status"] == "rejected", name
        assert {"code": code, "field": field} in result["problems"], (name, result["problems"])

    published = asyncio.run(
        read_until(
            ingest.settings,
            topics(ingest).transactions,
            lambda got: any(b'"H-sentinel"' in r.value for r in got),
        )
    )
    orders_seen = {decode_event(OrderEvent, r.value).order_id for r in published}
    assert "H-sentinel" in orders_seen
    assert not {f"H{index}" for index in range(len(hostile))} & orders_seen


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"customer_id": True}, "customer_id"),
        ({"order_id": False}, "order_id"),
        (
            {"lines": [{"product_id": "85123A", "quantity": True, "unit_price": 2.55}]},
            "lines.0.quantity",
        ),
    ],
)
def test_a_boolean_is_422_naming_the_field(ingest: Stack, values: dict, field: str) -> None:
    """`customer_id: true` became customer "1"."""
    response = post_orders(ingest, {**FIRST_ORDER, **values})
    assert response.status_code == 422, response.text
    assert [found for found, _ in field_problems(response)] == [field]


def test_an_order_too_large_for_the_broker_is_413_not_503(ingest: Stack) -> None:
    """20,000 real-looking lines make one event over the broker's 1 MiB: no retry can fix it."""
    lines = [
        {"product_id": f"85123A-{index}", "quantity": 6, "unit_price": 2.55}
        for index in range(20_000)
    ]
    response = post_orders(ingest, {**FIRST_ORDER, "order_id": "H-huge", "lines": lines})
    assert response.status_code == 413, response.text[:500]
    assert first_problem(response)[0] == "body"
    assert "retry-after" not in response.headers


def test_a_chunked_body_over_the_limit_is_413(ingest: Stack, tmp_path: Path) -> None:
    """Without Content-Length the limit is found while streaming; that was 400 'error parsing'."""

    def chunked(size: int, piece: bytes = b" " * 65_536) -> Iterator[bytes]:
        for _ in range(size // len(piece) + 1):
            yield piece

    response = httpx.post(
        f"{url(ingest, 'ingest')}/v1/orders",
        content=chunked(11 * 1024 * 1024),
        headers={**auth(), "content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413, response.text[:300]
    assert first_problem(response)[0] == "body"

    def multipart() -> Iterator[bytes]:
        yield (
            b'--b\r\ncontent-disposition: form-data; name="file"; filename="big.csv"\r\n'
            b"content-type: text/csv\r\n\r\n"
        )
        yield from chunked(9 * 1024 * 1024, SLICE.read_bytes()[:65_536])
        yield b"\r\n--b--\r\n"

    response = httpx.post(
        f"{url(ingest, 'ingest')}/v1/uploads",
        content=multipart(),
        headers={**auth(), "content-type": "multipart/form-data; boundary=b"},
        timeout=60,
    )
    assert response.status_code == 413, response.text[:300]
    assert first_problem(response)[0] == "body"


def test_a_put_without_a_mapping_is_422_and_changes_nothing(ingest: Stack) -> None:
    mappings = f"{url(ingest, 'ingest')}/v1/mappings/default"
    saved = {
        "mapping": {
            "customer_id": "CustomerID",
            "order_id": "InvoiceNo",
            "order_datetime": "InvoiceDate",
            "product_id": "StockCode",
            "quantity": "Quantity",
            "unit_price": "UnitPrice",
        },
        "timezone": "Europe/Paris",
    }
    assert httpx.put(mappings, headers=auth(), json=saved).status_code == 200
    try:
        for body in ({}, {"timezone": "Europe/London"}, {"mapping": None}):
            response = httpx.put(mappings, headers=auth(), json=body)
            assert response.status_code == 422, (body, response.text)
            assert first_problem(response)[0] == "mapping"
        column = {"mapping": {**saved["mapping"], "customer_id": "Customer\x00ID"}}
        response = httpx.put(mappings, headers=auth(), json=column)
        assert response.status_code == 422 and first_problem(response)[0] == "customer_id"
        assert httpx.get(mappings, headers=auth()).json() == saved
    finally:
        assert httpx.delete(mappings, headers=auth()).status_code == 204
    assert httpx.get(mappings, headers=auth()).status_code == 404


def clean_real_rows(rows: int) -> pl.DataFrame:
    """Real lines none of which any rule rejects."""
    return (
        pl.read_parquet(SLICE)
        .filter(
            pl.col("CustomerID").is_not_null()
            & (pl.col("Quantity") > 0)
            & (pl.col("UnitPrice") > 0)
        )
        .unique(maintain_order=True)
        .head(rows)
    )


def test_an_upload_without_a_rejected_row_ends_done(ingest: Stack, tmp_path: Path) -> None:
    """It ended failed with publish_failed ('expanded paths were empty ... rejects/*.parquet')."""
    path = tmp_path / "clean.parquet"
    clean_real_rows(2_000).write_parquet(path)
    response = upload(ingest, path)
    assert response.status_code == 202, response.text
    status = wait_done(ingest, response.json()["upload_id"])
    assert status["state"] == "done", status
    assert status["progress"]["rejected"] == 0
    assert status["progress"]["orders_published"] == status["progress"]["orders"] > 0
    rejects = httpx.get(
        f"{url(ingest, 'ingest')}/v1/uploads/{response.json()['upload_id']}/rejects.csv",
        headers=auth(),
    )
    assert rejects.status_code == 200
    assert rejects.text.splitlines()[0].startswith("row,reason,InvoiceNo")
    assert len(rejects.text.splitlines()) == 1


def test_a_finished_upload_is_announced_on_upload_events_with_its_counts(
    ingest: Stack, tmp_path: Path
) -> None:
    """What webhooks send as upload.completed: one UploadCompleted per upload, after its orders,
    with the counts its status shows."""
    path = tmp_path / "december.csv"
    pl.read_parquet(SLICE).head(3_000).write_csv(path)
    response = upload(ingest, path)
    assert response.status_code == 202, response.text
    upload_id = response.json()["upload_id"]
    status = wait_done(ingest, upload_id)
    assert status["state"] == "done", status

    def announced(records: list) -> list[UploadCompleted]:
        events = [decode_event(UploadCompleted, r.value) for r in records]
        return [e for e in events if e.upload_id == upload_id]

    records = asyncio.run(
        read_until(ingest.settings, topics(ingest).upload_events, lambda got: bool(announced(got)))
    )
    (event,) = announced(records)
    assert {r.key for r in records} == {b"default"}
    assert event.tenant_id == "default" and event.file == "december.csv"
    progress, result = status["progress"], status["result"]
    assert event.rows_read == progress["rows_read"] == 3_000
    assert event.accepted == progress["accepted"]
    assert event.rejected == progress["rejected"] > 0  # the slice has lines without a customer
    assert event.rejected_by_reason == progress["rejected_by_reason"]
    assert event.orders_published == progress["orders_published"] == result["order_events"] > 0
    assert event.first_order_at is not None
    assert event.first_order_at.isoformat() == result["first_order_at"]


def test_rejects_csv_neutralizes_formulas_and_unprintable_ids_are_rejected(
    ingest: Stack, tmp_path: Path
) -> None:
    formulas = ["=cmd|' /C calc'!A0", "@SUM(1)", "+1+1", "-1+1", '=HYPERLINK("http://x","y")']
    unprintable = ["17850\x00", "\x1b[31m17850", "\u202e05871"]
    frame = clean_real_rows(100).with_columns(pl.col("CustomerID").cast(pl.Int64).cast(pl.String))
    hostile = formulas + unprintable
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) < len(hostile))
        .then(pl.Series(hostile + [""] * (frame.height - len(hostile))))
        .otherwise(pl.col("CustomerID"))
        .alias("CustomerID"),
        # Formula ids are valid ids: a zero quantity is what sends their rows to rejects.csv.
        pl.when(pl.int_range(pl.len()) < len(formulas))
        .then(pl.lit(0))
        .otherwise(pl.col("Quantity"))
        .alias("Quantity"),
    )
    path = tmp_path / "hostile.parquet"
    frame.write_parquet(path)
    response = upload(ingest, path)
    assert response.status_code == 202, response.text
    upload_id = response.json()["upload_id"]
    status = wait_done(ingest, upload_id)
    assert status["state"] == "done", status
    assert status["progress"]["rejected_by_reason"] == {
        "zero_quantity": len(formulas),
        "invalid_customer_id": len(unprintable),
    }
    rejects = httpx.get(
        f"{url(ingest, 'ingest')}/v1/uploads/{upload_id}/rejects.csv", headers=auth()
    )
    written = pl.read_csv(rejects.content, infer_schema=False)
    assert written.get_column("CustomerID").to_list() == ["'" + f for f in formulas] + unprintable
    for row in written.iter_rows():
        assert not any(cell and cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)


def bomb(rows: int) -> bytes:
    """The slice's first 200 real rows as CSV, repeated to `rows` rows: a small gzip."""
    text = pl.read_parquet(SLICE).head(200).write_csv().encode()
    header, body = text.split(b"\n", 1)
    return header + b"\n" + body * (rows // 200)


def test_upload_limits_on_unpacked_bytes_and_rows(ingest: Stack, tmp_path: Path) -> None:
    """A 1M-row gzip of under 1 MB: refused at once by the size it declares, failed while
    reading when it hides it (a second, small gzip member), and too many rows fail too."""
    content = bomb(1_000_000)
    assert len(content) > UNPACKED_LIMIT
    declared = tmp_path / "declared.csv.gz"
    declared.write_bytes(gzip.compress(content))
    assert declared.stat().st_size < 1_000_000
    response = upload(ingest, declared)
    assert response.status_code == 413, response.text
    assert problem_of(response).detail and response.json()["code"] == "upload_too_large"

    hidden = tmp_path / "hidden.csv.gz"
    hidden.write_bytes(gzip.compress(content) + gzip.compress(b""))
    response = upload(ingest, hidden)
    assert response.status_code == 202, response.text
    status = wait_done(ingest, response.json()["upload_id"])
    assert status["state"] == "failed" and status["error"]["code"] == "upload_too_large", status

    many = tmp_path / "many.csv.gz"
    many.write_bytes(gzip.compress(bomb(ROWS_LIMIT + 20_000)))
    response = upload(ingest, many)
    assert response.status_code == 202, response.text
    status = wait_done(ingest, response.json()["upload_id"])
    assert status["state"] == "failed" and status["error"]["code"] == "too_many_rows", status
    assert "progress" not in status or status["progress"]["orders_published"] == 0


def test_orders_raw_rejects_out_of_range_values_with_their_reason(ingest: Stack) -> None:
    record = {
        "InvoiceNo": "R581590",
        "CustomerID": 12680.0,
        "InvoiceDate": "2011-12-09 12:50:00",
        "Country": "France",
        "lines": [
            {"StockCode": "22613", "Quantity": 1e308, "UnitPrice": 1e308},
            {"StockCode": "22899", "Quantity": 6, "UnitPrice": 2.1},
        ],
    }
    future = {**record, "InvoiceNo": "R581591", "InvoiceDate": "2031-01-01 00:00:00"}
    # JSON may say "\ud800"; no UTF-8 (no event, no RejectedRecord) can hold it as it is.
    surrogate = {**record, "InvoiceNo": "R581592", "CustomerID": "\ud800"}

    async def send() -> None:
        producer = AIOKafkaProducer(**aiokafka_options(ingest.settings))
        await producer.start()
        try:
            for value in (record, future, surrogate):
                await producer.send_and_wait(
                    topics(ingest).orders_raw,
                    json.dumps(value).encode(),
                    headers=[("tenant", b"default")],
                )
        finally:
            await producer.stop()

    asyncio.run(send())

    def of(records: list) -> dict[str, list[str]]:
        found = {}
        for raw in records:
            rejected = decode_event(RejectedRecord, raw.value)
            text = json.dumps(rejected.record)
            for invoice in ("R581590", "R581591", "R581592"):
                if invoice in text:
                    found[invoice] = [r.code for r in rejected.reasons]
        return found

    rejected = asyncio.run(
        read_until(
            ingest.settings, topics(ingest).transactions_rejected, lambda got: len(of(got)) == 3
        )
    )
    assert of(rejected) == {
        "R581590": ["quantity_out_of_range"],
        "R581591": ["future_order_datetime", "future_order_datetime"],
        "R581592": ["invalid_customer_id", "invalid_customer_id"],
    }


def rows_counted(stack: Stack) -> dict[str, float]:
    """retention_ingest_rows_total summed by outcome, from the service's /metrics."""
    counted = {"accepted": 0.0, "rejected": 0.0}
    for line in httpx.get(f"{url(stack, 'ingest')}/metrics").text.splitlines():
        if line.startswith("retention_ingest_rows_total{"):
            for outcome in counted:
                if f'outcome="{outcome}"' in line:
                    counted[outcome] += float(line.rsplit(" ", 1)[1])
    return counted


def test_a_nested_column_is_422_naming_it_and_the_next_upload_is_imported(
    ingest: Stack, tmp_path: Path
) -> None:
    """A list per row in the product column crashed the import; now the upload is refused before
    it is recorded, and the service imports the next file (decimal prices) and counts its rows."""
    rows = pl.read_parquet(SLICE).head(2_000)
    nested = tmp_path / "nested.parquet"
    rows.with_columns(pl.col("StockCode").map_elements(lambda code: [code])).write_parquet(nested)
    listed = httpx.get(f"{url(ingest, 'ingest')}/v1/uploads", headers=auth()).json()

    refused = upload(ingest, nested)

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "unreadable_column"
    assert first_problem(refused)[0] == "product_id"
    assert "'StockCode'" in problem_of(refused).detail
    assert httpx.get(f"{url(ingest, 'ingest')}/v1/uploads", headers=auth()).json() == listed

    before = rows_counted(ingest)
    decimal = tmp_path / "decimal.parquet"
    rows.with_columns(pl.col("UnitPrice").cast(pl.Decimal(38, 10))).write_parquet(decimal)
    accepted = upload(ingest, decimal)
    assert accepted.status_code == 202, accepted.text
    status = wait_done(ingest, accepted.json()["upload_id"])
    assert status["state"] == "done", status
    progress = status["progress"]
    assert progress["rows_read"] == rows.height == progress["accepted"] + progress["rejected"]
    assert progress["orders_published"] == progress["orders"] > 0
    after = rows_counted(ingest)
    assert after["accepted"] - before["accepted"] == progress["accepted"]
    assert after["rejected"] - before["rejected"] == progress["rejected"]
