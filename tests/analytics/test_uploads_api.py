"""`GET /v1/uploads` and `POST /v1/uploads/preview` on the running stack.

Tenant `default` holds the fixture's one upload of the UCI slice; previews are sent as tenant
`other`, which must stay empty: a preview publishes nothing and records no upload, and the tests
check both on the broker and on the listing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import struct
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import polars as pl
import pytest

from retention_cli.stack import Stack
from retention_ingest.file_ingest import ingest_file
from retention_shared.topics import Topics
from tests.support.features_service import read_to_end
from tests.support.problems import first_problem, problem_of
from tests.support.stack import API_KEY, READ_KEY, SLICE, auth, url

pytestmark = pytest.mark.slow

OTHER = "e2e-other"
RENAMED = {
    "InvoiceNo": "Bon",
    "StockCode": "Artikel",
    "Quantity": "Menge",
    "InvoiceDate": "Datum",
    "UnitPrice": "Preis",
    "CustomerID": "Kunde",
    "Country": "Land",
}
MAPPING = {
    "customer_id": "Kunde",
    "order_id": "Bon",
    "order_datetime": "Datum",
    "product_id": "Artikel",
    "quantity": "Menge",
    "unit_price": "Preis",
    "country": "Land",
}
LONDON = ZoneInfo("Europe/London")


def uploads(stack: Stack, key: str = READ_KEY, **params: object) -> httpx.Response:
    return httpx.get(f"{url(stack, 'ingest')}/v1/uploads", params=params, headers=auth(key))


def preview(
    stack: Stack, content: bytes, name: str = "export.csv", key: str = OTHER, **form: str
) -> httpx.Response:
    return httpx.post(
        f"{url(stack, 'ingest')}/v1/uploads/preview",
        files={"file": (name, content)},
        data=form,
        headers=auth(key),
        timeout=60,
    )


def day_first_export(rows: pl.DataFrame, path: Path) -> Path:
    """Rows of the slice as a spreadsheet user re-exports them: own column names, dd/mm/yyyy."""
    rows.rename(RENAMED).with_columns(pl.col("Datum").dt.strftime("%d/%m/%Y %H:%M")).write_csv(path)
    return path


def read_text(export: Path) -> pl.DataFrame:
    """Every cell as text, an empty one as "" (as ingest's reader holds a CSV)."""
    return pl.read_csv(export, infer_schema=False).fill_null("")


def expected_rows(source: pl.DataFrame, count: int = 20) -> list[dict]:
    """The first rows of `source` as an upload stores them: a float customer id such as 12583.0
    as `12583`, quantities and prices as numbers, the date as the UTC instant of the source's
    London wall-clock time."""
    rows = []
    for cells in source.head(count).iter_rows(named=True):
        customer = cells["CustomerID"]
        rows.append(
            {
                "customer_id": None if customer is None else str(int(customer)),
                "order_id": cells["InvoiceNo"],
                "order_datetime": cells["InvoiceDate"]
                .replace(tzinfo=LONDON)
                .astimezone(ZoneInfo("UTC"))
                .isoformat(),
                "product_id": cells["StockCode"],
                "quantity": float(cells["Quantity"]),
                "unit_price": float(cells["UnitPrice"]),
                "country": cells["Country"],
            }
        )
    return rows


def end_offsets(stack: Stack, topic: str) -> dict[int, int]:
    """Each partition's next offset, read up to the fetch high watermark."""
    records = asyncio.run(read_to_end(stack.settings, topic))
    ends: dict[int, int] = {}
    for record in records:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


# --- GET /v1/uploads -------------------------------------------------------------------------


def test_the_fixture_upload_is_listed_with_its_counts_for_a_read_key(
    loaded_stack: Stack, tmp_path: Path
) -> None:
    response = uploads(loaded_stack)
    assert response.status_code == 200, response.text
    listed = response.json()["uploads"]
    mine = [u for u in listed if u["filename"] == SLICE.name]
    assert len(mine) == 1
    upload = mine[0]
    result = ingest_file(SLICE, tenant_id="default", source="expected", work_dir=tmp_path)
    assert upload["state"] == "done" and upload["error"] is None
    assert upload["bytes"] == SLICE.stat().st_size
    assert upload["layout"] == "uci_online_retail"
    assert (upload["rows_read"], upload["accepted"], upload["rejected"]) == (
        result.rows_read,
        result.accepted,
        result.rejected,
    )
    assert upload["rejected_by_reason"] == result.rejected_by_reason
    assert upload["customers"] == result.customers
    assert upload["orders_published"] == result.order_events
    assert datetime.fromisoformat(upload["first_order_at"]) == result.first_order_at
    assert datetime.fromisoformat(upload["created_at"]) <= datetime.fromisoformat(
        upload["finished_at"]
    )
    # The same key may open the upload's full status, but not send a file or see raw rows.
    status = httpx.get(
        f"{url(loaded_stack, 'ingest')}{upload['status_url']}", headers=auth(READ_KEY)
    )
    assert status.status_code == 200 and status.json()["upload_id"] == upload["upload_id"]
    assert preview(loaded_stack, b"a,b\n1,2\n", key=READ_KEY).status_code == 403


def test_paging_lists_every_upload_once_newest_first(loaded_stack: Stack) -> None:
    everything = uploads(loaded_stack, limit=500).json()
    assert everything["next_cursor"] is None
    created = [u["created_at"] for u in everything["uploads"]]
    assert created == sorted(created, reverse=True)
    seen, cursor = [], None
    while True:
        page = uploads(loaded_stack, limit=1, **({"cursor": cursor} if cursor else {})).json()
        seen += [u["upload_id"] for u in page["uploads"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [u["upload_id"] for u in everything["uploads"]]


def test_a_tenant_sees_only_its_own_uploads(loaded_stack: Stack) -> None:
    defaults = {u["upload_id"] for u in uploads(loaded_stack).json()["uploads"]}
    assert defaults
    others = {u["upload_id"] for u in uploads(loaded_stack, key=OTHER).json()["uploads"]}
    assert not defaults & others
    upload_id = next(iter(defaults))
    theirs = httpx.get(f"{url(loaded_stack, 'ingest')}/v1/uploads/{upload_id}", headers=auth(OTHER))
    assert theirs.status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "query.limit"), ({"limit": 501}, "query.limit"), ({"cursor": "x"}, "cursor")],
)
def test_bad_paging_is_a_422_naming_the_parameter(
    loaded_stack: Stack, params: dict, field: str
) -> None:
    response = uploads(loaded_stack, **params)
    assert response.status_code == 422, response.text
    assert first_problem(response)[0] == field
    assert httpx.get(f"{url(loaded_stack, 'ingest')}/v1/uploads").status_code == 401


# --- POST /v1/uploads/preview ----------------------------------------------------------------


def test_a_renamed_day_first_export_previews_as_the_rows_it_holds(
    loaded_stack: Stack, tmp_path: Path
) -> None:
    # Every 60th row: dates across the year, so day-first is decided by days over 12.
    source = pl.read_parquet(SLICE).gather_every(60)
    export = day_first_export(source, tmp_path / "export.csv")
    response = preview(loaded_stack, export.read_bytes(), mapping=json.dumps(MAPPING))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["filename"] == "export.csv" and body["format"] == "csv"
    assert (body["layout"], body["delimiter"], body["timezone"]) == (
        "mapping",
        ",",
        "Europe/London",
    )
    assert body["date_format"] == {
        "order": "day_first",
        "pattern": "%d/%m/%Y %H:%M",
        "ambiguous": False,
    }
    assert body["columns"] == list(pl.read_csv(export, n_rows=0).columns)
    assert (body["mapping"], body["mapping_source"], body["problems"]) == (MAPPING, "given", [])
    assert body["rows"] == expected_rows(source)
    missing = [row["customer_id"] is None for row in body["rows"]]
    assert body["reasons"] == ["missing_customer_id" if m else None for m in missing]
    text = read_text(export).head(20)
    assert body["source_rows"] == text.to_dicts()
    fields = {f["name"]: f for f in body["canonical_fields"]}
    assert [name for name, f in fields.items() if f["required"]] == [
        "customer_id",
        "order_id",
        "order_datetime",
        "product_id",
        "quantity",
        "unit_price",
    ]
    assert all(f["description"] for f in fields.values())


def test_only_dates_up_to_the_twelfth_are_ambiguous_until_the_mapping_names_the_order(
    loaded_stack: Stack, tmp_path: Path
) -> None:
    source = pl.read_parquet(SLICE).head(100)  # 1 and 2 December 2010: both read both ways
    export = day_first_export(source, tmp_path / "export.csv").read_bytes()
    guessed = preview(loaded_stack, export, mapping=json.dumps(MAPPING)).json()
    assert guessed["date_format"]["order"] == "day_first" and guessed["date_format"]["ambiguous"]
    assert guessed["rows"] == expected_rows(source)

    month_first = json.dumps(MAPPING | {"date_format": "month_first"})
    told = preview(loaded_stack, export, mapping=month_first).json()
    assert told["date_format"] == {
        "order": "month_first",
        "pattern": "%m/%d/%Y %H:%M",
        "ambiguous": False,
    }
    assert told["mapping"]["date_format"] == "month_first" and not told["problems"]
    # 01/12/2010 08:45 read month-first is 12 January 2010.
    assert told["rows"][0]["order_datetime"] == "2010-01-12T08:45:00+00:00"

    # Over a whole year, month-first cannot read the 13th and later: said, not guessed.
    year = day_first_export(pl.read_parquet(SLICE).gather_every(60), tmp_path / "year.csv")
    wrong = preview(loaded_stack, year.read_bytes(), mapping=month_first)
    assert wrong.status_code == 200
    assert wrong.json()["date_format"] is None
    assert [p["field"] for p in wrong.json()["problems"]] == ["order_datetime"]


def test_an_incomplete_mapping_is_a_200_listing_what_to_map(
    loaded_stack: Stack, tmp_path: Path
) -> None:
    export = day_first_export(pl.read_parquet(SLICE).head(50), tmp_path / "export.csv")
    unmapped = preview(loaded_stack, export.read_bytes())
    assert unmapped.status_code == 200, unmapped.text
    body = unmapped.json()
    assert (body["layout"], body["mapping"], body["mapping_source"]) == (None, {}, None)
    assert body["rows"] == [{}] * 20 and len(body["source_rows"]) == 20
    assert [p["field"] for p in body["problems"]] == [
        "mapping",
        "customer_id",
        "order_datetime",
        "order_id",
        "product_id",
        "quantity",
        "unit_price",
    ]

    partial = {"customer_id": "Kunde", "order_datetime": "Datum", "quantity": "Anzahl"}
    body = preview(loaded_stack, export.read_bytes(), mapping=json.dumps(partial)).json()
    problems = {p["field"]: p["problem"] for p in body["problems"]}
    assert problems.pop("quantity") == "column 'Anzahl' is not in the file"
    assert set(problems) == {"order_id", "product_id", "unit_price"}
    assert body["mapping"] == {"customer_id": "Kunde", "order_datetime": "Datum"}
    # Read as the import reads it, though nothing can be imported yet: 12583.0 is 12583.
    assert body["rows"][0]["customer_id"] == "12583"
    assert body["reasons"] == [None] * 20
    assert body["date_format"]["order"] == "day_first"


def test_a_known_layout_needs_no_mapping(loaded_stack: Stack) -> None:
    body = preview(loaded_stack, SLICE.read_bytes(), name=SLICE.name).json()
    assert (body["format"], body["layout"], body["mapping_source"]) == (
        "parquet",
        "uci_online_retail",
        "layout",
    )
    assert body["date_format"]["order"] == "native" and not body["problems"]
    first = pl.read_parquet(SLICE).row(0, named=True)
    assert body["rows"][0]["customer_id"] == str(int(first["CustomerID"]))  # 12583.0 is 12583
    assert body["rows"][0]["unit_price"] == first["UnitPrice"]
    assert body["rows"][0]["order_datetime"] == (
        first["InvoiceDate"].replace(tzinfo=LONDON).astimezone(ZoneInfo("UTC")).isoformat()
    )


def test_a_preview_publishes_nothing_and_records_no_upload(loaded_stack: Stack) -> None:
    topics = Topics.with_prefix(loaded_stack.settings.topic_prefix)
    watched = (topics.transactions, topics.transactions_rejected, topics.retrain_requests)
    before = {topic: end_offsets(loaded_stack, topic) for topic in watched}
    listed = {key: uploads(loaded_stack, key=key).json() for key in (API_KEY, OTHER)}

    # The whole slice, which as an upload would publish every one of its orders.
    response = preview(loaded_stack, SLICE.read_bytes(), name=SLICE.name)
    assert response.status_code == 200, response.text

    assert {topic: end_offsets(loaded_stack, topic) for topic in watched} == before
    assert {key: uploads(loaded_stack, key=key).json() for key in (API_KEY, OTHER)} == listed
    previews = loaded_stack.settings.data_dir / "ingest" / "previews"
    assert not any(previews.iterdir())  # the file is not kept either


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"\x00\x01\x02\x03 not a table", "unknown_format"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 legacy xls", "unknown_format"),
    ],
)
def test_a_file_of_no_known_format_is_415(loaded_stack: Stack, content: bytes, code: str) -> None:
    response = preview(loaded_stack, content, name="export.xls")
    assert response.status_code == 415, response.text
    assert problem_of(response).detail and response.json()["code"] == code


def test_the_upload_size_limits_apply(loaded_stack: Stack) -> None:
    settings = loaded_stack.settings
    # A gzip whose trailer declares more than RETENTION_MAX_UPLOAD_UNPACKED_BYTES: refused from
    # the declaration (deflate could reach it from a file this size), nothing unpacked.
    declared = settings.max_upload_unpacked_bytes + 1
    padding = b"\0" * (declared // 1000)
    bomb = gzip.compress(b"a,b\n1,2\n") + padding + struct.pack("<I", declared % 2**32)
    response = preview(loaded_stack, bomb, name="export.csv.gz")
    assert response.status_code == 413, response.text
    assert problem_of(response).detail and response.json()["code"] == "upload_too_large"

    # A body declaring more than RETENTION_MAX_UPLOAD_BYTES is refused before it is read.
    head = (
        "POST /v1/uploads/preview HTTP/1.1\r\nHost: ingest\r\n"
        f"Authorization: Bearer {OTHER}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {settings.max_upload_bytes + 1}\r\n\r\n--b\r\n"
    )
    with socket.create_connection(("127.0.0.1", settings.ingest_port), timeout=10) as conn:
        conn.sendall(head.encode())
        answer = conn.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


@pytest.mark.parametrize(
    ("form", "status", "field"),
    [
        ({"mapping": "{not json"}, 422, "mapping"),
        ({"mapping": json.dumps({"client": "Kunde"})}, 422, "client"),
        ({"mapping": json.dumps({"date_format": "%Q"})}, 422, "date_format"),
        ({"timezone": "Mars/Olympus"}, 422, "timezone"),
    ],
)
def test_a_malformed_request_is_a_4xx_naming_the_field(
    loaded_stack: Stack, form: dict, status: int, field: str
) -> None:
    response = preview(loaded_stack, b"Kunde,Datum\n1,01/12/2010\n", **form)
    assert response.status_code == status, response.text
    assert first_problem(response)[0] == field
    empty = preview(loaded_stack, b"")
    assert empty.status_code == 422 and problem_of(empty).detail
    assert empty.json()["code"] == "empty_file"
    assert (
        httpx.post(
            f"{url(loaded_stack, 'ingest')}/v1/uploads/preview", files={"file": ("a.csv", b"a\n")}
        ).status_code
        == 401
    )
