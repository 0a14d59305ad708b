"""Every error path of every HTTP service answers an RFC 9457 problem (retention_shared.problems).

Each service's own app, built as its process builds it but without a broker (the app serves while
it retries the connection): no key, a bad scheme, an unknown key, a key without the role, an
unknown path, resource and method, a body over the limit, a file of no known format, bad query,
bad body, a body that is not JSON or not UTF-8, no model yet, not ready, and an unexpected
exception. Each answer must be `application/problem+json` conforming to `Problem`, with `status`
the HTTP status and `title` its phrase (tests/support/problems.py), and name the field and the problem
a client needs to fix the request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from retention_features.app import create_app as features_app
from retention_ingest.app import create_app as ingest_app
from retention_scoring.app import create_app as scoring_app
from retention_shared.config import Settings
from retention_trainer.app import create_app as trainer_app
from tests.support.problems import field_problems, problem_of

APPS: dict[str, Callable[[Settings], FastAPI]] = {
    "ingest": ingest_app,
    "features": features_app,
    "trainer": trainer_app,
    "scoring": scoring_app,
}
KEYS = "k-admin:acme:admin,k-read:acme:read,k-ingest:acme:ingest"
LIMIT = 64 * 1024  # RETENTION_MAX_REQUEST_BYTES here: small enough to exceed cheaply
ORDER = {
    "order_id": "536365",
    "customer_id": "17850",
    "order_datetime": "2010-12-01T08:26:00",
    "lines": [{"product_id": "85123A", "quantity": 6, "unit_price": 2.55}],
}


def key(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k-{name}"}


@pytest.fixture(scope="module")
def clients(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, TestClient]]:
    work = tmp_path_factory.mktemp("problems")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(work / "bentoml"))
        settings = Settings(
            api_keys=KEYS,
            kafka_bootstrap="127.0.0.1:1",  # nothing answers: /readyz is not ready
            data_dir=work / "data",
            max_request_bytes=LIMIT,
        )
        apps = {name: create(settings) for name, create in APPS.items()}
        for app in apps.values():
            app.add_api_route("/v1/fails", _fails, methods=["GET"])
        # Not entered: the lifespan (the broker connection) stays off; routes answer alone.
        yield {name: TestClient(app, raise_server_exceptions=False) for name, app in apps.items()}


async def _fails() -> None:
    raise RuntimeError("boom at /srv/secret/path for tenant acme")


@dataclass(frozen=True)
class Case:
    service: str
    method: str
    path: str
    status: int
    field: str | None  # the first field the problem names; None: no one field (a 503, a 500)
    says: str  # in that field's problem, or in `detail` when no field is named
    headers: dict[str, str] = field(default_factory=dict)
    send: dict[str, Any] = field(default_factory=dict)  # json= / content= / files= / params=

    def __str__(self) -> str:
        return f"{self.service}-{self.status}-{self.method}-{self.path}-{self.field}"


def expect(
    request: str,
    status: int,
    field_: str | None,
    says: str,
    who: str | None = None,
    headers: dict[str, str] | None = None,
    **send: Any,
) -> Case:
    """`request` is "service METHOD /path"; `who` the role of the key sent (None: no key)."""
    service, method, path = request.split()
    sent = {**(key(who) if who else {}), **(headers or {})}
    return Case(service, method, path, status, field_, says, sent, send)


def every_service(request: str, *args: Any, **kwargs: Any) -> list[Case]:
    """The same case for each service: `request` is "METHOD /path"."""
    return [expect(f"{service} {request}", *args, **kwargs) for service in APPS]


JSON = {"content-type": "application/json"}
GE1 = "greater than or equal to 1"
CASES = [
    # 401: no key, another scheme, a key nobody has.
    *every_service("GET /v1/whoami", 401, "Authorization", "missing"),
    *every_service(
        "GET /v1/whoami",
        401,
        "Authorization",
        "must be 'Bearer",
        headers={"Authorization": "Basic x"},
    ),
    *every_service(
        "GET /v1/whoami",
        401,
        "Authorization",
        "unknown API key",
        headers={"Authorization": "Bearer n"},
    ),
    # 403: a key without the role the route needs.
    expect("ingest POST /v1/orders", 403, "Authorization", "ingest role", "read", json=ORDER),
    expect(
        "features GET /v1/customers/17850/features", 403, "Authorization", "read role", "ingest"
    ),
    expect("trainer POST /v1/retrain", 403, "Authorization", "admin role", "read"),
    expect("scoring DELETE /v1/customers/17850", 403, "Authorization", "admin role", "read"),
    # 404: a path no route has, and a resource the tenant does not have.
    *every_service("GET /v1/no/such/route", 404, "path", "Not Found", "admin"),
    expect("ingest GET /v1/uploads/nothing", 404, "upload_id", "no upload 'nothing'", "read"),
    expect("ingest GET /v1/mappings/default", 404, "mapping", "no saved mapping", "admin"),
    expect("features GET /v1/customers/nobody/features", 404, "customer_id", "no customer", "read"),
    expect("features GET /v1/customers/nobody/orders", 404, "customer_id", "no customer", "read"),
    expect("trainer GET /v1/runs/nope", 404, "run_id", "no run 'nope'", "read"),
    expect(
        "scoring GET /v1/customers/nobody/score/history", 404, "customer_id", "no customer", "read"
    ),
    expect("scoring GET /v1/erasures/nope", 404, "erasure_id", "no erasure 'nope'", "admin"),
    # 405: a method the path does not take.
    *every_service("DELETE /v1/whoami", 405, "method", "Method Not Allowed", "admin"),
    # 413: a body over RETENTION_MAX_REQUEST_BYTES, refused by the middleware before any route.
    *every_service(
        "POST /v1/whoami",
        413,
        "body",
        f"larger than {LIMIT} bytes",
        "admin",
        content=b"x" * (LIMIT + 1),
    ),
    # 415: a file of no format ingest reads.
    expect(
        "ingest POST /v1/uploads/preview",
        415,
        "file",
        "legacy Excel (.xls) files are not supported",
        "ingest",
        files={"file": ("export.xls", b"\xd0\xcf\x11\xe0 not a table at all")},
    ),
    # 400: a body that is not UTF-8.
    expect(
        "ingest POST /v1/orders", 400, "body", "not UTF-8", "ingest", JSON, content=b'{"a": "\xff"}'
    ),
    # 422: a bad query parameter, a bad body field, a body that is not JSON.
    expect("ingest GET /v1/uploads", 422, "query.limit", GE1, "read", params={"limit": 0}),
    expect(
        "features GET /v1/customers/1/orders", 422, "query.limit", GE1, "read", params={"limit": 0}
    ),
    expect(
        "trainer GET /v1/cohorts",
        422,
        "query.period",
        "'month' or 'quarter'",
        "read",
        params={"period": "week"},
    ),
    expect(
        "scoring GET /v1/customers/1/score/history",
        422,
        "query.limit",
        GE1,
        "read",
        params={"limit": 0},
    ),
    expect(
        "ingest POST /v1/orders",
        422,
        "lines.0.quantity",
        "not a boolean",
        "ingest",
        json={**ORDER, "lines": [{"product_id": "p", "quantity": True, "unit_price": 1}]},
    ),
    expect("ingest PUT /v1/mappings/default", 422, "mapping", "required", "ingest", json={}),
    expect(
        "trainer POST /v1/retrain",
        422,
        "cutoff_every_days",
        "greater than or equal to 7",
        "admin",
        json={"cutoff_every_days": 0},
    ),
    expect(
        "scoring POST /v1/score",
        422,
        "customer_ids",
        "a valid list",
        "read",
        json={"customer_ids": "17850"},
    ),
    expect(
        "ingest POST /v1/orders", 422, "body", "not JSON: ", "ingest", JSON, content=b'{"a": 1,'
    ),
    expect(
        "trainer POST /v1/retrain",
        422,
        "body",
        "at character 17",
        "admin",
        JSON,
        content=b'{"reason": "soon"',
    ),
    expect("scoring POST /v1/score", 422, "body", "at character 1", "read", JSON, content=b"{"),
    # 503: no model for the tenant yet (no one field: the problem is in `detail`).
    expect("scoring GET /v1/customers/17850/score", 503, None, "no champion model", "read"),
    expect("scoring GET /v1/insights", 503, None, "no champion model", "read"),
    # 500: an exception no handler expected; nothing of it reaches the client.
    *every_service("GET /v1/fails", 500, None, "has been logged", "read"),
]


def _call(client: TestClient, case: Case) -> Any:
    return client.request(case.method, case.path, headers=case.headers, **case.send)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_error_is_a_problem_naming_what_to_fix(
    clients: dict[str, TestClient], case: Case
) -> None:
    response = _call(clients[case.service], case)
    assert response.status_code == case.status, response.text
    found = problem_of(response)  # media type, schema, status and title
    if case.field is None:
        assert found.errors == [], found
        assert case.says in found.detail, found
    else:
        named = field_problems(response)
        assert named and named[0][0] == case.field, named
        assert case.says in named[0][1], named
        # The sentence says the same, for people and logs.
        assert found.detail.startswith(f"{case.field}: "), found


def test_a_validation_problem_lists_every_field_at_fault(
    clients: dict[str, TestClient],
) -> None:
    bad_lines = [{"product_id": "p", "quantity": True, "unit_price": 1}]
    orders = clients["ingest"].post(
        "/v1/orders", headers=key("ingest"), json={**ORDER, "lines": bad_lines, "colour": "red"}
    )
    assert orders.status_code == 422
    assert [field for field, _ in field_problems(orders)] == ["lines.0.quantity", "colour"]
    history = clients["scoring"].get(
        "/v1/customers/1/score/history", headers=key("read"), params={"limit": "many"}
    )
    runs = clients["trainer"].post("/v1/retrain", headers=key("admin"), json={"x": 1, "y": 2})
    assert field_problems(history) == [
        ("query.limit", "Input should be a valid integer, unable to parse string as an integer")
    ]
    assert [field for field, _ in field_problems(runs)] == ["x", "y"]
    # `detail` says all of them in one sentence.
    assert problem_of(runs).detail == "; ".join(f"{f}: {p}" for f, p in field_problems(runs))


def test_a_401_still_asks_for_a_bearer_key(clients: dict[str, TestClient]) -> None:
    for client in clients.values():
        response = client.get("/v1/whoami", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_405_still_says_which_methods_are_allowed(clients: dict[str, TestClient]) -> None:
    for client in clients.values():
        response = client.delete("/v1/whoami", headers=key("read"))
        assert response.status_code == 405
        assert response.headers["allow"] == "GET"


def test_no_model_yet_still_says_when_to_retry(clients: dict[str, TestClient]) -> None:
    response = clients["scoring"].get("/v1/customers/17850/score", headers=key("read"))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0


def test_ingests_reason_code_stays_as_an_extension_member(
    clients: dict[str, TestClient],
) -> None:
    response = clients["ingest"].post(
        "/v1/uploads/preview", headers=key("ingest"), files={"file": ("e.csv", b"")}
    )
    assert response.status_code == 422
    problem_of(response)
    assert response.json()["code"] == "empty_file"


def test_readyz_not_ready_is_a_problem_keeping_its_report(clients: dict[str, TestClient]) -> None:
    for name, client in clients.items():
        response = client.get("/readyz")
        assert response.status_code == 503
        # Each failing check is a field of the problem; the broker's is one of them here.
        assert ("checks.broker", "connecting to the broker") in field_problems(response)
        report = response.json()
        assert (report["ready"], report["service"]) == (False, name)
        assert report["checks"]["broker"] == {"ok": False, "detail": "connecting to the broker"}


def test_a_500_tells_nothing_of_the_exception(clients: dict[str, TestClient]) -> None:
    for client in clients.values():
        response = client.get("/v1/fails", headers=key("read"))
        assert response.status_code == 500
        assert problem_of(response).errors == []
        for secret in ("boom", "/srv/secret", "RuntimeError", "Traceback", "acme"):
            assert secret not in response.text


def test_a_chunked_body_over_the_limit_is_the_same_problem(
    clients: dict[str, TestClient],
) -> None:
    # No Content-Length: the middleware counts the bytes as they come and cuts off the body.
    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b" " * (LIMIT // 2)

    response = clients["ingest"].post(
        "/v1/orders",
        content=chunks(),
        headers={**key("ingest"), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert field_problems(response) == [("body", f"request body is larger than {LIMIT} bytes")]
