"""Running the services as real processes against the session's broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from retention_cli.stack import SERVICES, WITH_CONSOLE, Stack, stack_environment
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, free_port
from retention_shared.kafka.clients import ensure_topics
from tests.support.paths import TEST_DATA

API_KEY = "e2e-key"
READ_KEY = "e2e-read"
API_KEYS = f"{API_KEY}:default:admin,e2e-other:other:admin,{READ_KEY}:default:read"


@contextmanager
def running_stack(
    settings: Settings,
    log_path: Path,
    services: tuple[str, ...] = SERVICES,
    ready_timeout: float = 180,
    **env: str,
) -> Iterator[Stack]:
    """The four services (or `services`, e.g. WITH_CONSOLE) on free ports, logging to
    `log_path`, ready within `ready_timeout` seconds (TimeoutError otherwise); stopped on
    exit."""
    settings = settings.model_copy(update={f"{name}_port": free_port() for name in WITH_CONSOLE})
    environment = stack_environment(settings, API_KEYS)
    environment.update(
        RETENTION_TOPIC_PREFIX=settings.topic_prefix, RETENTION_LOG_JSON="true", **env
    )
    with log_path.open("a") as log:
        stack = Stack(
            settings,
            environment,
            write=lambda line: print(line, file=log, flush=True),
            services=services,
            use_embedded_broker=False,
        )
        try:
            # Trainer and scoring load models and read topics: slow on a loaded 2-core machine.
            stack.start(ready_timeout=ready_timeout)
        except BaseException:
            print(log_path.read_text()[-5000:])
            raise
        try:
            yield stack
        finally:
            stack.stop()


@contextmanager
def stack_of_its_own(
    kafka: EmbeddedBroker,
    work: Path,
    prefix: str,
    services: tuple[str, ...] = SERVICES,
    **env: str,
) -> Iterator[Stack]:
    """`services` on the session broker with topics of a fresh prefix, their data, log and model
    store under `work`, and no scheduled retraining (a test asks for runs itself); `env` adds
    to (or overrides) their environment."""
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"{prefix}-{uuid.uuid4().hex[:6]}.",
        data_dir=work / "data",
    )
    asyncio.run(ensure_topics(settings))
    with running_stack(
        settings,
        work / "stack.log",
        services=services,
        **{
            "BENTOML_HOME": str(work / "bentoml"),
            "RETENTION_RETRAIN_EVERY_HOURS": "0",
            **env,
        },
    ) as stack:
        yield stack


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


def url(stack: Stack, service: str) -> str:
    return f"http://127.0.0.1:{stack.settings.port_of(service)}"


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# The UCI (I) slice the stack tests upload.
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
