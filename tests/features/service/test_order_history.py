"""`GET /v1/customers/{id}/orders` over a partition's state file, without a broker: amendments,
withdrawals and erasures as the features count them, forged cursors, and a state file written
before line counts were kept. The route on the running stack: tests/analytics/test_order_history.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retention_features.app import create_app
from retention_features.decoding import DecodedOrder, decode_orders, from_event
from retention_features.store import PartitionStore
from retention_shared.config import Settings
from retention_shared.cursors import encode_cursor
from retention_shared.events import OrderEvent, decode_event
from tests.support.problems import field_problems, first_problem
from tests.support.real_orders import order_stream
from tests.support.uci_orders import TEST_DATA

KEYS = "k-read:default:read,k-other:other:read"
AUTH = {"Authorization": "Bearer k-read"}
CUSTOMER = "12901"  # 36 orders in the slice, 8 of them cancellations


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[OrderEvent]:
    work = tmp_path_factory.mktemp("order-history")
    stream = order_stream(TEST_DATA / "online_retail_slice.parquet", work)
    return [decode_event(OrderEvent, payload) for _, payload in stream.records]


@pytest.fixture
def app_and_store(
    tmp_path: Path, events: list[OrderEvent]
) -> Iterator[tuple[TestClient, PartitionStore]]:
    # No broker: the app answers HTTP while it retries the connection (never, here).
    app = create_app(Settings(api_keys=KEYS, kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path))
    store = PartitionStore(app.state.consumer.store_path(0))
    decoded = decode_orders([event.to_bytes() for event in events])
    store.begin()
    store.insert_rows(
        [o.row(offset) for offset, o in enumerate(decoded) if isinstance(o, DecodedOrder)]
    )
    store.commit(len(decoded))
    app.state.consumer.stores[0] = store
    yield TestClient(app), store
    store.close()


def history(client: TestClient, customer: str = CUSTOMER, **params: object) -> list[dict]:
    response = client.get(f"/v1/customers/{customer}/orders", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["orders"]


def test_an_amended_order_shows_its_new_version_and_a_withdrawn_one_is_gone(
    app_and_store: tuple[TestClient, PartitionStore], events: list[OrderEvent]
) -> None:
    client, store = app_and_store
    theirs = [e for e in events if e.customer_id == CUSTOMER and e.kind.value == "purchase"]
    amended, withdrawn = theirs[0], theirs[1]
    fewer = amended.lines[:1]
    store.begin()
    store.amend(
        from_event(
            amended.model_copy(
                update={
                    "version": 1,
                    "lines": fewer,
                    "total": fewer[0].quantity * fewer[0].unit_price,
                }
            )
        ).row(10_000),
        withdrawn=False,
    )
    store.amend(
        from_event(withdrawn.model_copy(update={"version": 1, "withdrawn": True})).row(10_001),
        withdrawn=True,
    )
    store.commit(10_002)

    orders = {order["order_id"]: order for order in history(client)}
    assert orders[amended.order_id]["lines"] == 1 < len(amended.lines)
    assert orders[amended.order_id]["net_value"] == pytest.approx(
        fewer[0].quantity * fewer[0].unit_price
    )
    assert withdrawn.order_id not in orders
    assert len(orders) == sum(e.customer_id == CUSTOMER for e in events) - 1


def test_an_erased_customer_is_a_404_like_an_unknown_one(
    app_and_store: tuple[TestClient, PartitionStore],
) -> None:
    client, store = app_and_store
    assert history(client)
    assert store.erase_customers({("default", CUSTOMER): None})
    response = client.get(f"/v1/customers/{CUSTOMER}/orders", headers=AUTH)
    assert response.status_code == 404
    assert field_problems(response) == [("customer_id", f"no customer {CUSTOMER!r}")]


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        encode_cursor("uploads", ["2011-01-01", "abc"]),  # another list's cursor
        encode_cursor("orders", [2**70, "536370", "purchase"]),  # past SQLite's integers
        encode_cursor("orders", ["536370", "536370", "purchase"]),
        encode_cursor("orders", [1, "\ud800", "purchase"]),  # a lone surrogate
    ],
)
def test_a_cursor_the_service_did_not_issue_is_a_422(
    app_and_store: tuple[TestClient, PartitionStore], cursor: str
) -> None:
    client, _ = app_and_store
    response = client.get(f"/v1/customers/{CUSTOMER}/orders?cursor={cursor}", headers=AUTH)
    assert response.status_code == 422, response.text
    assert first_problem(response)[0] == "cursor"


def test_a_state_file_from_before_line_counts_keeps_working(
    tmp_path: Path, events: list[OrderEvent]
) -> None:
    """An older release's table (no `lines`, no `currency`) gets both columns on open; its
    orders answer `lines: null`, and orders stored afterwards carry their count."""
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE orders (tenant_id TEXT NOT NULL, customer_id TEXT NOT NULL, order_id TEXT "
        "NOT NULL, kind TEXT NOT NULL, occurred_at_us INTEGER NOT NULL, total REAL NOT NULL, "
        "items REAL NOT NULL, products TEXT NOT NULL, source_offset INTEGER NOT NULL, version "
        "INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, order_id, kind)) WITHOUT ROWID"
    )
    theirs = [from_event(e) for e in events if e.customer_id == CUSTOMER]
    old.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", theirs[0].row(0)[:10])
    old.commit()
    old.close()

    store = PartitionStore(path)
    store.begin()
    store.insert_rows([order.row(offset) for offset, order in enumerate(theirs[1:], 1)])
    store.commit(len(theirs))
    rows = {row.order_id: row for row in store.order_page("default", CUSTOMER, 100)}
    store.close()
    assert rows[theirs[0].order.order_id].lines is None
    assert all(rows[o.order.order_id].lines == o.lines for o in theirs[1:])
    assert {o.lines for o in theirs[1:]} != {None}
