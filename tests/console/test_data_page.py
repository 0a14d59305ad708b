"""The data page: upload, preview, column mapping, import, progress and history (services faked).

What is checked is what the console asks ingest and what it shows of the answers: the preview's
rows, the mapping a person chose arriving at ingest as chosen, the roles and CSRF checks in
front of every post, and failures as pages a person can read.
"""

from __future__ import annotations

import json
import re
from email.parser import BytesParser
from email.policy import HTTP

import httpx

from tests.console.support import FakeServices, csrf_token, signed_in
from tests.support.problems import problem_reply

CSV = (
    b"Bon;Artikel;Menge;Datum;Preis;Kunde;Land\n"
    b"536370;POST;3;01/12/2010 08:45;18.0;12583;France\n"
    b"536371;22086;80;13/12/2010 09:00;2.55;13748;United Kingdom\n"
)
CANONICAL = [
    ("customer_id", True),
    ("order_id", True),
    ("order_datetime", True),
    ("product_id", True),
    ("quantity", True),
    ("unit_price", True),
    ("order_total", False),
    ("currency", False),
    ("country", False),
]
CHOSEN = {
    "customer_id": "Kunde",
    "order_id": "Bon",
    "order_datetime": "Datum",
    "product_id": "Artikel",
    "quantity": "Menge",
    "unit_price": "Preis",
    "country": "Land",
}


def _preview(mapping: dict[str, str] | None = None) -> dict:
    """Ingest's preview of CSV: nothing recognized without a mapping, the rows with one."""
    mapping = mapping or {}
    fields = [name for name, _ in CANONICAL if name in mapping]
    source = [
        {"Bon": "536370", "Artikel": "POST", "Menge": "3", "Datum": "01/12/2010 08:45"},
        {"Bon": "536371", "Artikel": "22086", "Menge": "80", "Datum": "13/12/2010 09:00"},
    ]
    rows = [
        {name: "2010-12-01T08:45:00+00:00" if name == "order_datetime" else "x" for name in fields},
        {name: "2010-12-13T09:00:00+00:00" if name == "order_datetime" else "y" for name in fields},
    ]
    if "customer_id" in fields:
        rows[0]["customer_id"], rows[1]["customer_id"] = "12583", "13748 <b>"
    # Numbers come as the numbers an upload stores (ingest sends floats).
    numbers = {"quantity": (3.0, -1250.0), "unit_price": (18.0, 2.55)}
    for name, (first, second) in numbers.items():
        if name in fields:
            rows[0][name], rows[1][name] = first, second
    return {
        "filename": "export.csv",
        "format": "csv",
        "layout": "mapping" if mapping else None,
        "delimiter": ";",
        "date_format": {"order": "day_first", "pattern": "%d/%m/%Y %H:%M", "ambiguous": False}
        if "order_datetime" in mapping
        else None,
        "columns": ["Bon", "Artikel", "Menge", "Datum", "Preis", "Kunde", "Land"],
        "mapping": mapping,
        "mapping_source": "given" if mapping else None,
        "canonical_fields": [
            {"name": name, "required": required, "description": f"What {name} is."}
            for name, required in CANONICAL
        ],
        "rows": rows,
        "reasons": [None, "duplicate_line"] if mapping else [None, None],
        "source_rows": source,
        "problems": []
        if mapping
        else [
            {"field": "mapping", "problem": "the columns match no known layout"},
            {"field": "customer_id", "problem": "required: map it to one of the file's columns"},
        ],
        "timezone": "Europe/London",
    }


def _fields(request: httpx.Request) -> dict[str, bytes]:
    """The multipart form a request carried: field name → bytes."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.content)
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


def _previewing(request: httpx.Request) -> httpx.Response:
    sent = _fields(request)
    if sent.get("timezone") == b"Mars/Olympus":
        return problem_reply(422, "timezone", "'Mars/Olympus' is not an IANA timezone")
    mapping = json.loads(sent["mapping"]) if "mapping" in sent else None
    return httpx.Response(200, json=_preview(mapping))


def _upload(state: str = "done", **extra: object) -> dict:
    status = {
        "upload_id": "u1",
        "state": state,
        "filename": "export.csv",
        "bytes": 2048,
        "created_at": "2011-12-10T09:00:00.000000+00:00",
        "finished_at": None,
        "timezone": "Europe/London",
        "layout": "mapping",
        "progress": {"rows_read": 1500, "accepted": 1400, "rejected_by_reason": {}},
    }
    if state == "done":
        status["result"] = {
            "layout": "mapping",
            "date_format": {"order": "day_first", "pattern": "%d/%m/%Y %H:%M", "ambiguous": False},
            "rows_read": 25186,
            "accepted": 24097,
            "rejected": 1089,
            "rejected_by_reason": {"missing_customer_id": 783, "duplicate_line": 306},
            "order_events": 1349,
            "purchases": 1116,
            "cancellations": 233,
            "customers": 384,
            "first_order_at": "2010-12-01T08:45:00+00:00",
            "last_order_at": "2011-12-09T12:50:00+00:00",
            "net_total": 486327.23,
        }
    return {**status, **extra}


def _summary(upload_id: str, state: str, filename: str = "export.csv") -> dict:
    return {
        "upload_id": upload_id,
        "filename": filename,
        "state": state,
        "bytes": 2048,
        "created_at": "2011-12-10T09:00:00.000000Z",
        "finished_at": None,
        "rows_read": 25186,
        "accepted": 24097,
        "rejected": 1089,
        "rejected_by_reason": {},
        "customers": 384 if state == "done" else None,
        "status_url": f"/v1/uploads/{upload_id}",
    }


def _fake(roles: tuple[str, ...] = ("admin",), uploads: list[dict] | None = None) -> FakeServices:
    accepted = httpx.Response(202, json={"upload_id": "u1", "state": "queued"})
    return FakeServices(
        roles=roles,
        routes={
            ("ingest", "GET", "/v1/uploads"): {"uploads": uploads or [], "next_cursor": None},
            ("ingest", "POST", "/v1/uploads/preview"): _previewing,
            ("ingest", "POST", "/v1/uploads"): accepted,
            ("ingest", "PUT", "/v1/mappings/default"): lambda r: httpx.Response(
                200, content=r.content
            ),
            ("ingest", "GET", "/v1/uploads/u1"): _upload(),
        },
    )


def _posts(fake: FakeServices, path: str) -> list[httpx.Request]:
    return [r for r in fake.requests_to("ingest", path) if r.method != "GET"]


def _send_file(client, content: bytes = CSV, **headers: str) -> httpx.Response:
    token = csrf_token(client, "/data")
    return client.post(
        "/data/preview",
        data={"csrf_token": token},
        files={"file": ("export.csv", content, "text/csv")},
        headers=headers,
        follow_redirects=False,
    )


def _staged(client) -> str:
    response = _send_file(client)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/data/files/[\w-]+", location)
    return location


def _mapping_form(**choices: str) -> dict[str, str]:
    form = {f"map-{name}": column for name, column in CHOSEN.items()}
    return {**form, **choices}


def test_the_history_lists_every_upload_with_its_state_and_counts() -> None:
    uploads = [_summary("u2", "running", "late <b>.csv"), _summary("u1", "done")]
    client = signed_in(_fake(uploads=uploads))
    page = client.get("/data")
    assert page.status_code == 200
    assert re.findall(r'data-upload="(\w+)" data-state="(\w+)"', page.text) == [
        ("u2", "running"),
        ("u1", "done"),
    ]
    assert "24,097" in page.text and "late &lt;b&gt;.csv" in page.text
    assert 'href="/data/uploads/u1/rejects.csv"' in page.text
    # An ingest key gets the labelled file picker in a plain multipart form.
    assert '<label for="upload-file">Export file</label>' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert "Upload your first export" not in page.text


def test_an_empty_tenant_is_asked_for_its_first_export() -> None:
    page = signed_in(_fake()).get("/data")
    assert page.status_code == 200
    assert "Upload your first export" in page.text and 'id="upload-file"' in page.text


def test_the_preview_shows_the_rows_and_detection_ingest_answered() -> None:
    fake = _fake()
    client = signed_in(fake)
    page = client.get(_staged(client))
    assert page.status_code == 200
    (sent,) = fake.requests_to("ingest", "/v1/uploads/preview")
    fields = _fields(sent)
    # The file went whole, with no mapping: ingest chooses (saved mapping, known layout).
    assert fields["file"] == CSV and "mapping" not in fields
    assert "separated by semicolon" in page.text and "not recognized" in page.text
    assert "the columns match no known layout" in page.text
    # Without a mapping the file's own rows are shown, column by column.
    for value in ("13/12/2010 09:00", "536371", "Artikel"):
        assert value in page.text
    assert 'id="mapping-form"' in page.text
    for name, _ in CANONICAL:
        assert f'name="map-{name}"' in page.text and f'<label for="map-{name}">' in page.text
    assert '<label for="map-order_datetime">Order date and time</label>' in page.text
    assert ">Import</button>" in page.text


def test_checking_the_mapping_previews_what_it_reads() -> None:
    fake = _fake()
    client = signed_in(fake)
    location = _staged(client)
    token = csrf_token(client, location)
    form = {"csrf_token": token, **_mapping_form(date_format="day_first")}
    part = client.post(f"{location}/check", data=form, headers={"HX-Request": "true"})
    assert part.status_code == 200 and "<html" not in part.text
    sent = fake.requests_to("ingest", "/v1/uploads/preview")[-1]
    assert json.loads(_fields(sent)["mapping"]) == {**CHOSEN, "date_format": "day_first"}
    # The rows as ingest read them with it, escaped.
    assert "2010-12-13 09:00 UTC" in part.text and "13748 &lt;b&gt;" in part.text
    assert 'data-date-order="day_first"' in part.text
    # Numbers as numbers, without a float's ".0"; the row an upload would reject says why.
    for shown in ("3", "-1,250", "18", "2.55"):
        assert f'<td class="num">{shown}</td>' in part.text
    assert ".0<" not in part.text
    assert "1 of them would be rejected" in part.text
    assert '<tr class="rejected" data-reason="duplicate_line">' in part.text
    assert "Rejected: Duplicate line" in part.text and part.text.count("Imported") == 1
    # Without htmx the whole page comes back, the form holding what was chosen.
    again = client.post(f"{location}/check", data=form)
    assert again.status_code == 200 and '<option value="Kunde" selected>' in again.text
    assert '<option value="day_first" selected>' in again.text


def test_choices_ingest_refuses_to_preview_are_said_and_the_last_preview_stays() -> None:
    client = signed_in(_fake())
    location = _staged(client)
    token = csrf_token(client, location)
    form = {"csrf_token": token, **_mapping_form(timezone="Mars/Olympus")}
    part = client.post(f"{location}/check", data=form, headers={"HX-Request": "true"})
    assert part.status_code == 200 and 'id="preview-refused"' in part.text
    assert "timezone: &#39;Mars/Olympus&#39; is not an IANA timezone" in part.text
    assert "13/12/2010 09:00" in part.text  # the preview before, without a mapping
    page = client.post(f"{location}/check", data=form)
    assert page.status_code == 422 and 'id="preview-refused"' in page.text
    assert 'value="Mars/Olympus"' in page.text and '<option value="Kunde" selected>' in page.text


def test_import_sends_the_file_with_the_mapping_chosen_and_forgets_the_file() -> None:
    fake = _fake()
    client = signed_in(fake)
    location = _staged(client)
    token = csrf_token(client, location)
    form = {
        "csrf_token": token,
        **_mapping_form(date_format="day_first", timezone=" Europe/Berlin "),
    }
    response = client.post(f"{location}/import", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/data/uploads/u1"
    (sent,) = _posts(fake, "/v1/uploads")
    fields = _fields(sent)
    assert json.loads(fields["mapping"]) == {**CHOSEN, "date_format": "day_first"}
    assert fields["timezone"] == b"Europe/Berlin" and fields["file"] == CSV
    assert sent.headers["authorization"] == "Bearer good-key"
    # Not saved as the default unless asked.
    assert fake.requests_to("ingest", "/v1/mappings/default") == []
    # The console kept the file only until it was imported.
    assert client.post(f"{location}/import", data=form).status_code == 404
    assert client.app.state.staged_files._files == {}


def test_save_as_default_puts_the_mapping_and_timezone() -> None:
    fake = _fake()
    client = signed_in(fake)
    location = _staged(client)
    form = {
        "csrf_token": csrf_token(client, location),
        **_mapping_form(date_format="month_first", timezone="America/New_York", save_default="1"),
    }
    response = client.post(f"{location}/import", data=form, follow_redirects=False)
    assert response.headers["location"] == "/data/uploads/u1?default=saved"
    (put,) = fake.requests_to("ingest", "/v1/mappings/default")
    assert put.method == "PUT"
    assert json.loads(put.content) == {
        "mapping": {**CHOSEN, "date_format": "month_first"},
        "timezone": "America/New_York",
    }
    page = client.get(response.headers["location"])
    assert "saved as this tenant's default" in page.text


def test_a_refused_import_shows_the_reason_and_keeps_the_file() -> None:
    fake = _fake()
    refused = problem_reply(422, "unit_price", "missing unit_price", code="missing_column")
    fake.routes["ingest", "POST", "/v1/uploads"] = refused
    client = signed_in(fake)
    location = _staged(client)
    form = {"csrf_token": csrf_token(client, location), **_mapping_form()}
    del form["map-unit_price"]
    page = client.post(f"{location}/import", data=form)
    assert page.status_code == 422
    assert 'id="mapping-refused"' in page.text and "unit_price: missing unit_price" in page.text
    assert '<option value="Kunde" selected>' in page.text
    assert client.get(location).status_code == 200


def test_a_read_key_sees_no_upload_form_and_cannot_post_one() -> None:
    fake = _fake(roles=("read",), uploads=[_summary("u1", "done")])
    client = signed_in(fake)
    page = client.get("/data")
    assert page.status_code == 200 and 'data-upload="u1"' in page.text
    assert 'id="upload-file"' not in page.text and 'action="/data/preview"' not in page.text
    assert "rejects.csv" not in page.text  # ingest serves rejected rows to ingest keys only
    response = _send_file(client)
    assert response.status_code == 403 and "ingest role" in response.text
    token = csrf_token(client, "/data")
    assert client.post("/data/files/abc/import", data={"csrf_token": token}).status_code == 403
    assert fake.requests_to("ingest", "/v1/uploads/preview") == []


def test_posts_without_the_csrf_token_are_refused() -> None:
    fake = _fake()
    client = signed_in(fake)
    response = client.post("/data/preview", files={"file": ("export.csv", CSV, "text/csv")})
    assert response.status_code == 403 and "reload the page" in response.text
    location = _staged(client)
    forged = {"csrf_token": "forged", **_mapping_form()}
    assert client.post(f"{location}/import", data=forged).status_code == 403
    assert _posts(fake, "/v1/uploads") == []


def test_a_file_over_the_limit_gets_a_page_not_an_upload() -> None:
    fake = _fake()
    client = signed_in(fake, max_upload_bytes=1000)
    response = _send_file(client, content=b"x" * 5000)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "This file is too large" in response.text and "1,000 bytes" in response.text
    assert fake.requests_to("ingest", "/v1/uploads/preview") == []


def test_another_session_cannot_use_a_kept_file() -> None:
    fake = _fake()
    owner = signed_in(fake)
    location = _staged(owner)
    other = signed_in(fake)
    assert other.get(location).status_code == 404
    form = {"csrf_token": csrf_token(other, "/data"), **_mapping_form()}
    assert other.post(f"{location}/import", data=form).status_code == 404
    assert owner.get(location).status_code == 200


def test_ingest_down_is_a_readable_page_and_keeps_no_file() -> None:
    fake = _fake()
    client = signed_in(fake)
    token = csrf_token(client, "/data")
    fake.down.add("ingest")
    page = client.get("/data")
    assert page.status_code == 503 and "The ingest service is not answering" in page.text
    response = client.post(
        "/data/preview",
        data={"csrf_token": token},
        files={"file": ("export.csv", CSV, "text/csv")},
    )
    assert response.status_code == 503 and "The ingest service is not answering" in response.text
    assert client.app.state.staged_files._files == {}


def test_an_unreadable_file_is_ingests_reason() -> None:
    fake = _fake()
    unknown = problem_reply(415, "file", "not a table", code="unknown_format")
    fake.routes["ingest", "POST", "/v1/uploads/preview"] = unknown
    client = signed_in(fake)
    response = _send_file(client)
    assert response.status_code == 415 and "file: not a table" in response.text
    assert "This file cannot be read" in response.text and 'id="upload-file"' in response.text
    assert client.app.state.staged_files._files == {}


def test_a_running_upload_polls_its_progress_every_second() -> None:
    fake = _fake()
    fake.routes["ingest", "GET", "/v1/uploads/u1"] = _upload("running")
    client = signed_in(fake)
    page = client.get("/data/uploads/u1")
    assert page.status_code == 200
    assert '<progress id="upload-progress" data-state="running"' in page.text
    assert 'hx-get="/data/uploads/u1/status" hx-trigger="every 1s"' in page.text
    assert "1,500</span> rows read" in page.text and "1,400</span> accepted" in page.text
    part = client.get("/data/uploads/u1/status", headers={"HX-Request": "true"})
    assert part.status_code == 200 and "<html" not in part.text
    assert 'id="upload-status"' in part.text
    # Asked without htmx (no JavaScript), the status is the page.
    plain = client.get("/data/uploads/u1/status", follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/data/uploads/u1"


def test_an_upload_without_counts_yet_shows_its_state() -> None:
    fake = _fake()
    client = signed_in(fake)
    for state in ("queued", "running"):
        status = {**_upload(state), "progress": None}
        fake.routes["ingest", "GET", "/v1/uploads/u1"] = status
        page = client.get("/data/uploads/u1")
        assert page.status_code == 200
        assert f'<progress id="upload-progress" data-state="{state}"' in page.text
    # Stopped while reading: the counts it reached, the reason, no result.
    failed = _upload("failed", error={"code": "interrupted", "problem": "the service stopped"})
    failed["progress"] = {"rows_read": 10, "accepted": 9, "rejected_by_reason": {"bad_date": 1}}
    fake.routes["ingest", "GET", "/v1/uploads/u1"] = failed
    page = client.get("/data/uploads/u1")
    assert page.status_code == 200 and "the service stopped" in page.text
    assert 'data-reason="bad_date"' in page.text and "data-result" not in page.text


def test_a_done_upload_shows_its_result_and_what_happens_next() -> None:
    client = signed_in(_fake())
    part = client.get("/data/uploads/u1/status", headers={"HX-Request": "true"})
    assert '<progress id="upload-progress" data-state="done"' in part.text
    assert "hx-trigger" not in part.text  # polling stops
    results = dict(re.findall(r'data-result="(\w+)" data-value="(\d+)"', part.text))
    assert results == {"accepted": "24097", "rejected": "1089", "customers": "384"}
    assert re.findall(r'data-reason="(\w+)"', part.text) == [
        "missing_customer_id",
        "duplicate_line",
    ]
    assert 'href="/data/uploads/u1/rejects.csv"' in part.text
    assert "Training starts by itself" in part.text and 'href="/models"' in part.text


def test_a_failed_upload_says_why() -> None:
    fake = _fake()
    error = {"code": "publish_failed", "field": None, "problem": "the broker went away"}
    fake.routes["ingest", "GET", "/v1/uploads/u1"] = _upload("failed", error=error)
    page = signed_in(fake).get("/data/uploads/u1")
    assert '<progress id="upload-progress" data-state="failed"' in page.text
    assert "the broker went away" in page.text and "hx-trigger" not in page.text


def test_rejected_rows_come_through_the_console_with_the_users_key() -> None:
    fake = _fake()
    csv = b"row,reason\n3,missing_customer_id\n"
    fake.routes["ingest", "GET", "/v1/uploads/u1/rejects.csv"] = httpx.Response(
        200,
        content=csv,
        headers={
            "content-type": "text/csv; charset=utf-8",
            "content-disposition": 'attachment; filename="rejects-u1.csv"',
        },
    )
    client = signed_in(fake)
    response = client.get("/data/uploads/u1/rejects.csv")
    assert response.status_code == 200 and response.content == csv
    assert response.headers["content-disposition"] == 'attachment; filename="rejects-u1.csv"'
    (sent,) = fake.requests_to("ingest", "/v1/uploads/u1/rejects.csv")
    assert sent.headers["authorization"] == "Bearer good-key"
    # Another tenant's upload, or an id that is not one, is ingest's 404 or never asked.
    assert client.get("/data/uploads/u2/rejects.csv").status_code == 404
    assert client.get("/data/uploads/..%2F..%2Fwhoami/rejects.csv").status_code in (404, 422)


def test_signing_out_forgets_the_kept_file() -> None:
    client = signed_in(_fake())
    staged_id = _staged(client).rsplit("/", 1)[1]
    kept = client.app.state.staged_files
    session_id = next(iter(client.app.state.sessions._sessions))
    staged = kept.find(session_id, staged_id)
    assert staged is not None and staged.path.exists()
    client.post("/signout", data={"csrf_token": csrf_token(client, "/data")})
    assert kept.find(session_id, staged_id) is None and not staged.path.exists()
