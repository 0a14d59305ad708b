"""One running stack for every analytics test: the UCI slice uploaded, a model trained and served.

Building it costs about a minute (upload, lake, a training run, every customer scored), so the
analytics tests share it and only read from it; a test that changes data uses its own tenant key
(`e2e-other` sees an empty tenant).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.kafka import ensure_topics
from tests.stack_support import API_KEY, auth, running_stack, url
from tests.uci_orders import TEST_DATA

SLICE = TEST_DATA / "online_retail_slice.parquet"
FINISHED = {"published", "rejected", "skipped", "failed"}


def upload_file(stack: Stack, path: Path, key: str = API_KEY, timeout: float = 120) -> dict:
    """Upload `path` through ingest and wait until it is done; its final status."""
    with path.open("rb") as file:
        response = httpx.post(
            f"{url(stack, 'ingest')}/v1/uploads",
            files={"file": (path.name, file)},
            headers=auth(key),
            timeout=60,
        )
    assert response.status_code == 202, response.text
    upload_id = response.json()["upload_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.get(f"{url(stack, 'ingest')}/v1/uploads/{upload_id}", headers=auth(key))
        if found.json()["state"] in ("done", "failed"):
            assert found.json()["state"] == "done", found.text
            return found.json()
        time.sleep(0.3)
    raise TimeoutError(f"upload {upload_id} not done")


def wait_for_published_run(stack: Stack, key: str = API_KEY, timeout: float = 240) -> dict:
    """The first finished training run of the key's tenant; it must have published a model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.get(f"{url(stack, 'trainer')}/v1/runs", headers=auth(key)).json()["runs"]
        done = [run for run in runs if run["status"] in FINISHED]
        if done:
            assert done[0]["status"] == "published", done[0]
            return done[0]
        time.sleep(0.5)
    raise TimeoutError("no training run finished")


def wait_until_scored(
    stack: Stack, customers: int, key: str = API_KEY, timeout: float = 120
) -> None:
    """Scoring serves the champion and has every one of `customers` customers' features."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        segments = httpx.get(f"{url(stack, 'scoring')}/v1/segments", headers=auth(key))
        if segments.status_code == 200:
            served = sum(s["customers"] for s in segments.json()["segments"])
            if served >= customers:
                return
        time.sleep(0.5)
    raise TimeoutError(f"scoring does not serve {customers} customers: {segments.text}")


@pytest.fixture(scope="session")
def analytics_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("analytics")


@pytest.fixture(scope="session")
def loaded_stack(kafka: EmbeddedBroker, analytics_work: Path) -> Iterator[Stack]:
    """All four services with `online_retail_slice` uploaded for tenant `default`, a model
    trained and published, and every customer scored. Tenant `other` (key `e2e-other`) is empty."""
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"analytics-{uuid.uuid4().hex[:6]}.",
        data_dir=analytics_work / "data",
    )
    asyncio.run(ensure_topics(settings))
    with running_stack(
        settings,
        analytics_work / "stack.log",
        BENTOML_HOME=str(analytics_work / "bentoml"),
        RETENTION_RETRAIN_EVERY_HOURS="0",
    ) as stack:
        status = upload_file(stack, SLICE)
        wait_for_published_run(stack)
        wait_until_scored(stack, status["result"]["customers"])
        yield stack
