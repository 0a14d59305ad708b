"""One running stack for every analytics test: the UCI slice uploaded, a model trained and served.

Building it costs about a minute (upload, lake, a training run, every customer scored), so the
analytics tests share it and only read from it; a test that changes data uses its own tenant key
(`e2e-other` sees an empty tenant).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retention_cli.stack import Stack
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.stack import (
    SLICE,
    stack_of_its_own,
    upload_file,
    wait_for_published_run,
    wait_until_scored,
)


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
