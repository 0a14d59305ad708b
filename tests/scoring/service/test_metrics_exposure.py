"""`/metrics` does not name tenants when told not to: ingest, trainer and scoring as processes on
the real broker with `RETENTION_METRICS_TENANT_LABELS` = `hashed` and `dropped`.

The tenant has a champion (stored as a published run leaves it), customers in scoring, an order
sent to ingest and scores served, so every kind of tenant-labelled series exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import polars as pl
import pytest

from retention_bundle.bundle import ModelBundle
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.broker import isolated_settings
from tests.support.champion_store import store_champion
from tests.support.scoring_service import feature_events, publish_features, wait_for
from tests.support.stack import running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

TENANT = "acme-retail-7f"
KEY = "key-acme"
AUTH = {"Authorization": f"Bearer {KEY}"}
SHOWN = {"hashed": hashlib.sha256(TENANT.encode()).hexdigest()[:12], "dropped": "-"}
# Per service, metrics that must carry the tenant label after the requests below.
TENANT_METRICS = {
    "ingest": ("retention_ingest_rows_total", "retention_ingest_orders_published_total"),
    "trainer": ("retention_trainer_champion_metric",),
    "scoring": (
        "retention_scoring_scores_total",
        "retention_scoring_model_info",
        "retention_scoring_model_age_seconds",
    ),
}


@dataclass
class Exposed:
    mode: str
    texts: dict[str, str]  # service → its /metrics text


def _an_order() -> dict:
    """The first invoice of the Online Retail slice with a customer, as `POST /v1/orders` takes it."""
    raw = pl.read_parquet(TEST_DATA / "online_retail_slice.parquet")
    lines = raw.filter(
        pl.col("CustomerID").is_not_null() & (pl.col("UnitPrice") > 0) & (pl.col("Quantity") > 0)
    )
    invoice = lines.filter(pl.col("InvoiceNo") == lines["InvoiceNo"][0])
    return {
        "order_id": str(invoice["InvoiceNo"][0]),
        "customer_id": str(int(invoice["CustomerID"][0])),
        "order_datetime": invoice["InvoiceDate"][0].isoformat(),
        "lines": [
            {"product_id": str(p), "quantity": int(q), "unit_price": float(u)}
            for p, q, u in invoice.select("StockCode", "Quantity", "UnitPrice").iter_rows()
        ],
    }


@pytest.fixture(scope="module", params=["hashed", "dropped"])
def exposed(
    request: pytest.FixtureRequest,
    kafka: EmbeddedBroker,
    tmp_path_factory: pytest.TempPathFactory,
    bundle: ModelBundle,
) -> Iterator[Exposed]:
    mode = request.param
    work = tmp_path_factory.mktemp(f"metrics-{mode}")
    settings = isolated_settings(kafka, work / "data")
    home = work / "bentoml"
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant=TENANT)
    store_champion(settings, home, work, bundle, TENANT, orders)
    asyncio.run(publish_features(settings, feature_events(orders)))
    with (
        running_stack(
            settings,
            work / "services.log",
            services=("ingest", "trainer", "scoring"),
            BENTOML_HOME=str(home),
            RETENTION_API_KEYS=f"{KEY}:{TENANT}:admin",
            RETENTION_METRICS_TENANT_LABELS=mode,
            RETENTION_RETRAIN_EVERY_HOURS="0",
        ) as stack,
        httpx.Client(timeout=30) as client,
    ):
        scoring = url(stack, "scoring")
        wait_for(
            lambda: client.get(f"{scoring}/v1/model", headers=AUTH).status_code == 200,
            what="the champion served",
        )
        sent = client.post(f"{url(stack, 'ingest')}/v1/orders", json=_an_order(), headers=AUTH)
        assert sent.status_code == 200, sent.text
        customer = orders["customer_id"][0]
        wait_for(
            lambda: (
                client.get(f"{scoring}/v1/customers/{customer}/score", headers=AUTH).status_code
                == 200
            ),
            what="a score",
        )
        texts = {name: client.get(f"{url(stack, name)}/metrics").text for name in TENANT_METRICS}
    yield Exposed(mode, texts)


def test_no_tenant_id_appears_on_any_services_metrics(exposed: Exposed) -> None:
    for service, text in exposed.texts.items():
        assert TENANT not in text, service


def test_every_tenant_label_is_the_hash_or_dash(exposed: Exposed) -> None:
    shown = SHOWN[exposed.mode]
    for service, text in exposed.texts.items():
        values = set(re.findall(r'[{,]tenant="([^"]*)"', text))
        assert values == {shown}, (service, values)
        for metric in TENANT_METRICS[service]:
            assert re.search(rf'^{metric}\{{[^}}]*tenant="{re.escape(shown)}"', text, re.M), (
                service,
                metric,
            )
