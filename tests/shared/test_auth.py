"""Auth rules, checked over HTTP on a real service app (the features service)."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retention_features.app import create_app
from retention_features.store import PartitionStore, StoredOrder, to_microseconds
from retention_shared.auth import ApiKeys, AuthConfigError, Role
from retention_shared.config import Settings
from retention_shared.events import OrderEvent, OrderKind, OrderLine, order_event_id
from tests.support.problems import first_problem

MOMENT = datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
KEYS = "k-acme-read:acme:read,k-acme-ingest:acme:ingest,k-acme-admin:acme:admin,k-globex:globex:read+ingest"


def order(tenant: str, customer: str) -> OrderEvent:
    return OrderEvent(
        event_id=order_event_id(tenant, "536365", OrderKind.PURCHASE),
        tenant_id=tenant,
        order_id="536365",
        customer_id=customer,
        occurred_at=datetime(2010, 12, 1, 8, 26, tzinfo=UTC),
        kind=OrderKind.PURCHASE,
        lines=[OrderLine(product_id="85123A", quantity=6, unit_price=2.55)],
        total=15.3,
        source="http",
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # No broker is needed to answer HTTP: the app keeps serving while it retries the connection.
    app = create_app(Settings(api_keys=KEYS, kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path))
    store = PartitionStore(app.state.consumer.store_path(0))
    store.begin()
    store.add_orders(
        [StoredOrder(order("acme", "17850"), 0), StoredOrder(order("globex", "12583"), 1)]
    )
    store.save_tenant_clocks({"acme": to_microseconds(MOMENT), "globex": to_microseconds(MOMENT)})
    store.commit(2)
    app.state.consumer.stores[0] = store
    yield TestClient(app)
    store.close()


def get(client: TestClient, path: str, key: str | None = None, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {key}"} if key is not None else {}
    return client.get(path, headers=headers)


def test_no_key_is_401_naming_the_header(client: TestClient) -> None:
    response = get(client, "/v1/customers/17850/features")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert first_problem(response)[0] == "Authorization"


@pytest.mark.parametrize(
    ("key", "scheme"), [("nope", "Bearer"), ("k-acme-read", "Basic"), ("", "Bearer")]
)
def test_unknown_key_or_scheme_is_401(client: TestClient, key: str, scheme: str) -> None:
    assert get(client, "/v1/customers/17850/features", key, scheme).status_code == 401


def test_key_without_the_role_is_403(client: TestClient) -> None:
    response = get(client, "/v1/customers/17850/features", "k-acme-ingest")
    assert response.status_code == 403
    assert "read" in first_problem(response)[1]


def test_the_key_decides_the_tenant(client: TestClient) -> None:
    mine = get(client, "/v1/customers/17850/features", "k-acme-read")
    assert mine.status_code == 200
    assert mine.json()["features"]["frequency"] == 1
    # globex's customer does not exist for acme: the same 404 as a customer nobody has.
    theirs = get(client, "/v1/customers/12583/features", "k-acme-read")
    nobody = get(client, "/v1/customers/99999/features", "k-acme-read")
    assert theirs.status_code == nobody.status_code == 404
    assert first_problem(theirs)[1] == "no customer '12583'"
    assert get(client, "/v1/customers/12583/features", "k-globex").status_code == 200


def test_admin_holds_every_role_of_its_tenant(client: TestClient) -> None:
    assert get(client, "/v1/customers/17850/features", "k-acme-admin").status_code == 200
    assert get(client, "/v1/customers/12583/features", "k-acme-admin").status_code == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_ops_endpoints_need_no_key(client: TestClient, path: str) -> None:
    # /readyz answers 503 here (no broker), but never 401.
    assert get(client, path).status_code in (200, 503)


def test_keys_are_parsed_with_their_roles() -> None:
    keys = ApiKeys.parse(KEYS)
    globex = keys.find("k-globex")
    assert globex is not None and globex.tenant_id == "globex"
    assert globex.roles == {Role.READ, Role.INGEST}
    assert not globex.has(Role.ADMIN)
    assert keys.find("k-globe") is None and keys.find("k-globex ") is None


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("just-a-key", "entry 1 must look like"),
        ("k:acme:read,k2:acme:root", "entry 2 (acme) has an unknown role"),
        ("k::read", "entry 1"),
    ],
)
def test_malformed_keys_are_refused(spec: str, problem: str) -> None:
    with pytest.raises(AuthConfigError, match=re.escape(problem)):
        ApiKeys.parse(spec)


def test_no_keys_refuses_to_start_unless_dev_mode() -> None:
    with pytest.raises(AuthConfigError, match="RETENTION_API_KEYS"):
        create_app(Settings(api_keys=""))
    assert create_app(Settings(api_keys="", dev_mode=True)) is not None
