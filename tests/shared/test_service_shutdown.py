"""A service that had to wait for the broker still stops without an error-level log line, and a
producer whose start failed leaves nothing open."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError

from retention_cli.stack import stack_environment
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, free_port
from retention_shared.kafka.bulk_producer import BulkProducer

pytestmark = pytest.mark.slow


def _wait(condition: Callable[[], bool], timeout: float, what: str, output: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not after {timeout}s:\n{''.join(output)}"
        time.sleep(0.2)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _level(line: str) -> str:
    try:
        return str(json.loads(line).get("level", ""))
    except (json.JSONDecodeError, AttributeError):
        return ""


def test_a_service_that_waited_for_the_broker_stops_without_an_error(tmp_path: Path) -> None:
    broker_port, ingest_port = free_port(), free_port()
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{broker_port}", ingest_port=ingest_port, data_dir=tmp_path
    )
    env = stack_environment(settings, "shutdown-key:default:admin")
    env.update(RETENTION_LOG_JSON="true", RETENTION_TOPIC_PREFIX="")
    process = subprocess.Popen(
        [sys.executable, "-m", "retention_ingest"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []

    def read() -> None:
        for line in process.stdout or []:
            output.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Nothing listens yet: the service retries, as when it starts before (or while) the
        # broker restarts.
        _wait(
            lambda: sum("broker not reachable, retrying" in line for line in output) >= 2,
            60,
            "two failed connects",
            output,
        )
        with EmbeddedBroker(Settings(), port=broker_port):
            _wait(lambda: _ready(ingest_port), 60, "ingest ready", output)
            stopping_from = len(output)
            process.terminate()
            process.wait(30)
            reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode in (0, -signal.SIGTERM), "".join(output)  # uvicorn re-raises it
    assert not [line for line in output if "Unclosed" in line], "".join(output)
    after_stop = [line for line in output[stopping_from:] if _level(line) in ("error", "critical")]
    assert after_stop == []


async def test_a_bulk_producer_that_could_not_start_leaves_nothing_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = BulkProducer(Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}"))
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    gc.collect()  # an unclosed aiokafka producer complains when it is collected
    await asyncio.sleep(0)
    assert "Unclosed AIOKafkaProducer" not in caplog.text
    assert not producer.started
