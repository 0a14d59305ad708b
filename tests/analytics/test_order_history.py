"""`GET /v1/customers/{id}/orders` on the running stack, against the slice's own orders.

The expected history is computed here from the slice as ingest's file pipeline cleans it
(`ingest_file`, then `orders_from_event_columns`), not read from the features service's state:
every customer's answer must be exactly their accepted orders, newest first.
"""

from __future__ import annotations

from datetime import datetime

import httpx
import polars as pl
import pytest

from retention_cli.stack import Stack
from retention_ingest.file_ingest import ingest_file
from retention_shared.features import orders_from_event_columns
from tests.support.problems import field_problems, first_problem
from tests.support.stack import READ_KEY, SLICE, auth, url

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slice_orders(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """One row per accepted order: the feature frame's columns plus its number of lines."""
    work = tmp_path_factory.mktemp("order-history")
    events = ingest_file(SLICE, tenant_id="default", source="expected", work_dir=work)
    collected = events.events().collect()
    lines = collected.select("order_id", "kind", lines=pl.col("lines").list.len())
    return orders_from_event_columns(collected).join(lines, on=["order_id", "kind"])


def expected_history(orders: pl.DataFrame, customer: str) -> list[dict]:
    theirs = orders.filter(pl.col("customer_id") == customer).sort(
        "occurred_at", "order_id", "kind", descending=True
    )
    return [
        {
            "order_id": row["order_id"],
            "occurred_at": row["occurred_at"],
            "lines": row["lines"],
            "net_value": pytest.approx(row["total"], abs=1e-9),
            "cancelled": row["kind"] == "cancellation",
            "currency": None,  # the slice has no currency column
        }
        for row in theirs.iter_rows(named=True)
    ]


def history(stack: Stack, customer: str, key: str = READ_KEY, **params: object) -> httpx.Response:
    return httpx.get(
        f"{url(stack, 'features')}/v1/customers/{customer}/orders",
        params=params,
        headers=auth(key),
    )


def parsed(orders: list[dict]) -> list[dict]:
    return [
        order | {"occurred_at": datetime.fromisoformat(order["occurred_at"])} for order in orders
    ]


def test_every_customer_sees_exactly_their_accepted_orders_newest_first(
    loaded_stack: Stack, slice_orders: pl.DataFrame
) -> None:
    customers = slice_orders["customer_id"].unique().sort().to_list()
    assert len(customers) > 300
    with httpx.Client(base_url=url(loaded_stack, "features"), headers=auth(READ_KEY)) as client:
        for customer in customers:
            response = client.get(f"/v1/customers/{customer}/orders", params={"limit": 500})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["customer_id"] == customer and body["next_cursor"] is None
            assert parsed(body["orders"]) == expected_history(slice_orders, customer)


def test_paging_gives_every_order_once_in_order(
    loaded_stack: Stack, slice_orders: pl.DataFrame
) -> None:
    busiest = slice_orders["customer_id"].value_counts(sort=True)["customer_id"][0]
    expected = expected_history(slice_orders, busiest)
    assert len(expected) > 40
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        body = history(loaded_stack, busiest, **params).json()
        assert len(body["orders"]) <= 7
        seen += parsed(body["orders"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == -(-len(expected) // 7)
    assert seen == expected
    # The default page is 50 orders.
    assert len(history(loaded_stack, busiest).json()["orders"]) == min(50, len(expected))


def test_another_tenants_customer_is_the_same_404_as_an_unknown_one(
    loaded_stack: Stack, slice_orders: pl.DataFrame
) -> None:
    customer = slice_orders["customer_id"][0]
    assert history(loaded_stack, customer).status_code == 200
    theirs = history(loaded_stack, customer, key="e2e-other")
    nobody = history(loaded_stack, "no-such-customer")
    assert theirs.status_code == nobody.status_code == 404
    assert field_problems(theirs) == [("customer_id", f"no customer {customer!r}")]
    # A cursor does not reach across tenants either.
    cursor = history(loaded_stack, customer, limit=1).json()["next_cursor"]
    if cursor is not None:
        assert history(loaded_stack, customer, key="e2e-other", cursor=cursor).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ],
)
def test_bad_paging_is_a_422_naming_the_parameter(
    loaded_stack: Stack, slice_orders: pl.DataFrame, params: dict, field: str
) -> None:
    response = history(loaded_stack, slice_orders["customer_id"][0], **params)
    assert response.status_code == 422, response.text
    assert first_problem(response)[0] == field


def test_a_request_without_a_key_is_401(loaded_stack: Stack, slice_orders: pl.DataFrame) -> None:
    customer = slice_orders["customer_id"][0]
    response = httpx.get(f"{url(loaded_stack, 'features')}/v1/customers/{customer}/orders")
    assert response.status_code == 401
