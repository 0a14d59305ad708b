"""Every 4xx of a service app is a problem naming a field, the framework's own answers included.

FastAPI answers a body it cannot decode (not UTF-8, nested past the parser's depth) with 400 and
only "There was an error parsing the body", an unmatched path with 404 "Not Found"; a client
cannot tell which part of its request was wrong. Checked over HTTP on the ingest app.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retention_ingest.app import create_app
from retention_shared.config import Settings
from tests.support.problems import first_problem

AUTH = {"Authorization": "Bearer k-ingest", "content-type": "application/json"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # No broker is needed to answer these: the app serves while it retries the connection.
    settings = Settings(
        api_keys="k-ingest:acme:ingest", kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path
    )
    yield TestClient(create_app(settings))


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        (b'{"order_id": "\xff\xfe"}', 400, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"order_id": "536365",', 422, "not JSON"),
        (b"order_id=536365", 422, "not JSON"),
    ],
    ids=["invalid-utf8", "nested-100k", "truncated", "form-encoded"],
)
def test_an_undecodable_body_names_the_body(
    client: TestClient, body: bytes, status: int, problem: str
) -> None:
    response = client.post("/v1/orders", content=body, headers=AUTH)
    assert response.status_code == status, response.text
    field, text = first_problem(response)
    assert field == "body"
    assert problem in text


def test_an_unknown_path_or_method_names_it(client: TestClient) -> None:
    missing = client.get("/v1/customers/a/b/c", headers=AUTH)
    assert missing.status_code == 404
    assert first_problem(missing)[0] == "path"
    wrong = client.delete("/v1/orders", headers=AUTH)
    assert wrong.status_code == 405
    assert first_problem(wrong)[0] == "method"
    assert "allow" in {name.lower() for name in wrong.headers}


def test_the_routes_own_details_become_the_problems_errors(client: TestClient) -> None:
    response = client.post("/v1/orders", json={"order_id": "1"})
    assert response.status_code == 401
    assert first_problem(response)[0] == "Authorization"
    assert response.headers["www-authenticate"] == "Bearer"
    upload = client.get("/v1/uploads/nothing", headers=AUTH)
    assert upload.status_code in (403, 404)
