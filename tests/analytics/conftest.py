"""One running stack for every analytics test: the UCI slice uploaded, a model trained and served.

Building it costs about a minute (upload, lake, a training run, every customer scored), so the
analytics tests share it and only read from it; a test that changes data uses its own tenant key
(`e2e-other` sees an empty tenant).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.embedded_broker import EmbeddedBroker
from tests.stack_support import API_KEY, auth, stack_of_its_own, upload_file, url
from tests.uci_orders import TEST_DATA

SLICE = TEST_DATA / "online_retail_slice.parquet"
FINISHED = {"published", "rejected", "skipped", "failed"}


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
    with stack_of_its_own(kafka, analytics_work, "analytics") as stack:
        status = upload_file(stack, SLICE)
        wait_for_published_run(stack)
        wait_until_scored(stack, status["result"]["customers"])
        yield stack
