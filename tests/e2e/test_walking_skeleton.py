"""The four services as processes on the real broker: an order in over HTTP comes out as events."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from retention_shared.config import Settings
from retention_shared.events import CustomerFeatures, OrderEvent, decode_event
from retention_shared.topics import Topics
from tests.support.kafka_reading import read_until
from tests.support.metrics_catalog import documented_metrics
from tests.support.stack import SERVICES, auth, running_stack, url

pytestmark = pytest.mark.slow

# The first order of the UCI Online Retail file.
ORDER = {
    "order_id": "536365",
    "customer_id": "17850",
    "order_datetime": "2010-12-01T08:26:00",
    "lines": [
        {"product_id": "85123A", "quantity": 6, "unit_price": 2.55},
        {"product_id": "71053", "quantity": 6, "unit_price": 3.39},
    ],
    "country": "United Kingdom",
}


async def test_an_order_flows_from_ingest_through_features_to_scoring(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    topics = Topics.with_prefix(kafka_settings.topic_prefix)
    with running_stack(kafka_settings, tmp_path / "stack.log") as stack:
        async with httpx.AsyncClient(timeout=10) as client:
            for service in SERVICES:
                ready = await client.get(f"{url(stack, service)}/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"]["broker"]["ok"] is True

            response = await client.post(
                f"{url(stack, 'ingest')}/v1/orders", json=ORDER, headers=auth()
            )
            assert response.status_code == 200, response.text
            event_id = response.json()["results"][0]["event_ids"][0]

            transactions = await read_until(
                kafka_settings, topics.transactions, lambda records: len(records) >= 1
            )
            event = decode_event(OrderEvent, transactions[0].value)
            assert transactions[0].key == b"default:17850"
            assert (event.event_id, event.customer_id, event.tenant_id) == (
                event_id,
                "17850",
                "default",
            )
            assert event.total == pytest.approx(6 * 2.55 + 6 * 3.39)
            assert (
                event.occurred_at.isoformat() == "2010-12-01T08:26:00+00:00"
            )  # London winter = UTC

            features_records = await read_until(
                kafka_settings, topics.customer_features, lambda records: len(records) >= 1
            )
            features = decode_event(CustomerFeatures, features_records[0].value)
            assert (features.tenant_id, features.customer_id) == ("default", "17850")
            assert features.history.purchase_orders == 1
            assert (
                features.source is not None
                and features.source.partition == transactions[0].partition
            )

            # Scoring materializes customer-features; another tenant's key cannot see the customer.
            seen = await _eventually(
                client,
                f"{url(stack, 'scoring')}/v1/customers/17850/features",
                lambda r: r.status_code == 200,
            )
            assert seen.json()["features"]["monetary"] == pytest.approx(event.total)
            other = await client.get(
                f"{url(stack, 'scoring')}/v1/customers/17850/features", headers=auth("e2e-other")
            )
            assert other.status_code == 404

            trainer = await _eventually(
                client, f"{url(stack, 'trainer')}/v1/lake", lambda r: r.json()["orders"] > 0
            )
            assert trainer.json()["orders"] == 1

            for service in SERVICES:
                metrics = (await client.get(f"{url(stack, service)}/metrics")).text
                assert "# TYPE retention_http_requests_total counter" in metrics
                assert "# TYPE retention_messages_total counter" in metrics
                check_metrics_match_the_docs(service, metrics)
            ingest_metrics = (await client.get(f"{url(stack, 'ingest')}/metrics")).text
            assert (
                _sample(
                    ingest_metrics,
                    "retention_messages_total",
                    direction="published",
                    topic=topics.transactions,
                )
                == 1
            )
            assert (
                _sample(
                    ingest_metrics,
                    "retention_http_requests_total",
                    route="/v1/orders",
                    status="200",
                )
                == 1
            )
            features_metrics = (await client.get(f"{url(stack, 'features')}/metrics")).text
            assert (
                _sample(
                    features_metrics,
                    "retention_messages_total",
                    direction="consumed",
                    topic=topics.transactions,
                )
                == 1
            )


def check_metrics_match_the_docs(service: str, exposition: str) -> None:
    """docs/metrics.md (which dashboards and alerts are checked against) lists what runs."""
    documented = {
        name: metric.type
        for name, metric in documented_metrics().items()
        if metric.service in ("all", service)
    }
    exported = dict(re.findall(r"^# TYPE (retention_\w+) (\w+)$", exposition, re.MULTILINE))
    assert exported == documented, f"{service}: documented {documented}, exported {exported}"


async def _eventually(
    client: httpx.AsyncClient, address: str, done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    for _ in range(50):
        response = await client.get(address, headers=auth())
        if done(response):
            return response
        await asyncio.sleep(0.2)
    raise AssertionError(f"{address} answered {response.status_code}: {response.text}")


def _sample(exposition: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    for line in exposition.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"no sample {name} {labels}")
