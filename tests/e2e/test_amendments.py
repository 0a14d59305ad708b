"""Order amendments through the running services on the real broker.

Real orders of the UCI Online Retail slice go in over `POST /v1/orders`. Sending one again as it
was is a retry; with other lines and no version it is a 409 naming `lines`, and nothing changes
downstream; with a higher version and another customer it moves: the features service takes it
from the first customer and gives it to the second, the trainer's lake keeps only the new version,
and the offline feature definition over the lake equals what the features service serves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from retention_shared.config import Settings
from retention_shared.features import FEATURE_NAMES, compute_features
from retention_trainer.lake import open_lake
from tests.support.problems import first_problem
from tests.support.stack import auth, running_stack, url
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow
SERVICES = ("ingest", "features", "trainer")


def real_orders(count: int) -> list[dict[str, Any]]:
    """The slice's first purchase invoices with a customer, as `POST /v1/orders` bodies."""
    rows = (
        pl.read_parquet(TEST_DATA / "online_retail_slice.parquet")
        .filter(
            pl.col("CustomerID").is_not_null()
            & ~pl.col("InvoiceNo").str.starts_with("C")
            & (pl.col("UnitPrice") > 0)
        )
        .unique(["InvoiceNo", "StockCode"], keep="first", maintain_order=True)
    )
    invoices = rows.get_column("InvoiceNo").unique(maintain_order=True).head(count)
    orders = []
    for invoice in invoices:
        lines = rows.filter(pl.col("InvoiceNo") == invoice)
        first = lines.row(0, named=True)
        orders.append(
            {
                "order_id": invoice,
                "customer_id": str(int(first["CustomerID"])),
                "order_datetime": first["InvoiceDate"].isoformat(),
                "lines": [
                    {"product_id": p, "quantity": q, "unit_price": u}
                    for p, q, u in lines.select("StockCode", "Quantity", "UnitPrice").iter_rows()
                ],
            }
        )
    return orders


def features_of(client: httpx.Client, base: str, customer: str) -> dict[str, Any] | None:
    response = client.get(f"{base}/v1/customers/{customer}/features", headers=auth())
    return response.json() if response.status_code == 200 else None


def wait_until(check, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.3)


def test_an_order_moves_to_another_customer_only_with_a_higher_version(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    orders = real_orders(12)
    moved = next(o for o in orders if len(o["lines"]) > 1)
    others = {o["customer_id"] for o in orders} - {moved["customer_id"]}
    new_customer = sorted(others)[0]
    with running_stack(kafka_settings, tmp_path / "stack.log", services=SERVICES) as stack:
        ingest, features = url(stack, "ingest"), url(stack, "features")
        with httpx.Client(timeout=30) as client:
            sent = client.post(f"{ingest}/v1/orders", json={"orders": orders}, headers=auth())
            assert sent.status_code == 200 and sent.json()["accepted"] == len(orders), sent.text
            before = {c: None for c in (moved["customer_id"], new_customer)}
            wait_until(
                lambda: all(features_of(client, features, c) for c in before), "first vectors"
            )
            before = {c: features_of(client, features, c) for c in before}

            # The same order again: a retry, answered as before.
            retry = client.post(f"{ingest}/v1/orders", json=moved, headers=auth())
            assert retry.status_code == 200, retry.text

            # Other lines, no version: a conflict naming what differs; nothing published.
            changed = {**moved, "lines": moved["lines"][:1]}
            conflict = client.post(f"{ingest}/v1/orders", json=changed, headers=auth())
            assert conflict.status_code == 409, conflict.text
            unchanged = next(o for o in orders if o is not moved)
            assert first_problem(conflict)[0] == "lines"
            assert conflict.json()["conflicts"][0]["differs"] == ["lines"]
            batch = client.post(
                f"{ingest}/v1/orders",
                json={"orders": [unchanged, {**moved, "customer_id": new_customer}]},
                headers=auth(),
            )
            assert batch.status_code == 409
            assert first_problem(batch)[0] == "orders.1.customer_id"

            # A higher version, another customer and fewer lines: the order moves.
            amended = {**changed, "customer_id": new_customer, "version": 1}
            done = client.post(f"{ingest}/v1/orders", json=amended, headers=auth())
            assert done.status_code == 200, done.text
            # The same amendment again is a retry; a lower version with other content conflicts.
            assert (
                client.post(f"{ingest}/v1/orders", json=amended, headers=auth()).status_code == 200
            )
            stale = {**moved, "version": 0}
            assert client.post(f"{ingest}/v1/orders", json=stale, headers=auth()).status_code == 409

            def moved_over() -> bool:
                old = features_of(client, features, moved["customer_id"])
                new = features_of(client, features, new_customer)
                return (
                    new is not None
                    and new["history"]["purchase_orders"]
                    == before[new_customer]["history"]["purchase_orders"] + 1
                    and (
                        old is None
                        or old["history"]["purchase_orders"]
                        == before[moved["customer_id"]]["history"]["purchase_orders"] - 1
                    )
                )

            wait_until(moved_over, "the order moved between the customers' vectors")
            served = {c: features_of(client, features, c) for c in before}

            lake = open_lake(
                stack.settings.model_copy(
                    update={"data_dir": Path(stack.env["RETENTION_DATA_DIR"])}
                )
            )

            def lake_has_the_amendment() -> bool:
                kept = lake.orders("default").filter(pl.col("order_id") == moved["order_id"])
                return kept.height == 1 and kept["customer_id"][0] == new_customer

            wait_until(lake_has_the_amendment, "the lake keeps only the amended version")

    lake_orders = lake.orders("default")
    assert lake_orders.height == len(orders)
    for customer, vector in served.items():
        if vector is None:
            continue
        offline = compute_features(
            lake_orders.filter(pl.col("customer_id") == customer),
            as_of=pl.Series([vector["as_of"]]).str.to_datetime(time_zone="UTC")[0],
        ).row(0, named=True)
        for name in FEATURE_NAMES:
            assert offline[name] == pytest.approx(vector["features"][name], abs=1e-9), name
