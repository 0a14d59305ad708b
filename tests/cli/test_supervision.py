"""`retention up` under faults: crashed services and a killed broker come back, any number of
signals stop everything, children die with it, and a clean stop logs no error."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from retention_cli.stack import SERVICES, WITH_CONSOLE
from retention_shared.config import Settings
from retention_shared.topics import Topics
from tests.cli.running_up import (
    RunningUp,
    busy_ports,
    leftovers,
    still_alive,
    up_environment,
)
from tests.support.kafka_reading import read_until
from tests.support.moto_s3 import moto_s3, new_bucket

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUp]:
    running = RunningUp(up_environment(tmp_path_factory.mktemp("up")))
    try:
        yield running
    finally:
        running.stop()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_ready(port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not _ready(port):
        assert time.monotonic() < deadline, f"nothing ready on {port} after {timeout}s"
        time.sleep(0.5)


def _topics(bootstrap: str) -> set[str]:
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def test_in_memory_mode_says_on_start_what_a_broker_restart_loses(up: RunningUp) -> None:
    note = up.wait_for(r"keeps its log in memory: .*")
    assert "every record of every topic and every committed offset is lost" in note.group(0)
    assert "RETENTION_BROKER_STORAGE" in note.group(0)
    assert "log in memory: lost if the broker restarts" in up.output


def test_a_killed_service_is_started_again_and_the_rest_keep_running(up: RunningUp) -> None:
    before = up.children()
    assert set(before) == {*WITH_CONSOLE, "broker"}
    mark = len(up.lines)
    before["features"].send_signal(signal.SIGKILL)

    crash = up.wait_for(r"features crashed \((.+?)\) after .*restart (\d+) in (\d+)s", after=mark)
    assert crash.groups() == ("killed by SIGKILL", "1", "1")
    up.wait_for(r"features started again \(pid \d+\)", after=mark)
    _wait_ready(up.port("features"))
    after = up.children()
    assert after["features"].pid != before["features"].pid
    for name in ("ingest", "trainer", "scoring", "broker"):
        assert after[name].pid == before[name].pid, f"{name} was restarted too"


def test_a_killed_broker_is_announced_and_started_again_with_its_topics(up: RunningUp) -> None:
    before = up.children()
    mark = len(up.lines)
    before["broker"].send_signal(signal.SIGKILL)

    announced = up.wait_for(r"broker stopped unexpectedly \(killed by SIGKILL\).*", after=mark)
    assert "kept its log in memory" in announced.group(0)
    assert "every record of every topic and every committed consumer offset is lost" in (
        announced.group(0)
    )
    port = up.port("broker")
    up.wait_for(rf"broker started again on port {port}", after=mark)
    assert up.children()["broker"].pid != before["broker"].pid
    assert {spec.name for spec in Topics.with_prefix("").specs()} <= _topics(f"127.0.0.1:{port}")
    for name in SERVICES:  # they reconnect to the new broker by themselves
        _wait_ready(up.port(name))
        assert up.children()[name].pid == before[name].pid


def test_any_number_of_signals_stop_everything_and_free_the_ports(tmp_path: Path) -> None:
    with RunningUp(up_environment(tmp_path)) as up:
        children = list(up.children().values())
        assert len(children) == 7
        for signum in (signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            up.process.send_signal(signum)
            time.sleep(0.3)
        up.process.wait(90)
        assert not still_alive(children, timeout=0)
        assert busy_ports(up.env) == []
        assert (
            "stopping: ingest, features, trainer, scoring, webhooks, console, broker" in up.output
        )


def test_ctrl_c_twice_while_starting_leaves_nothing_behind(tmp_path: Path) -> None:
    with RunningUp(up_environment(tmp_path), ready_timeout=None) as up:
        up.wait_for(r"^ingest +\|", timeout=90)  # the broker is up, the services are starting
        up.process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        up.process.send_signal(signal.SIGINT)
        up.process.wait(90)
        assert up.process.returncode == 130, up.output[-3000:]
        assert leftovers(up.env) == []
        assert busy_ports(up.env) == []


def test_children_die_with_a_killed_retention_up(tmp_path: Path) -> None:
    with RunningUp(up_environment(tmp_path)) as up:
        children = list(up.children().values())
        assert len(children) == 7
        up.process.send_signal(signal.SIGKILL)
        up.process.wait(30)
        assert still_alive(children, timeout=30) == []
        deadline = time.monotonic() + 30
        while busy_ports(up.env):
            assert time.monotonic() < deadline, busy_ports(up.env)
            time.sleep(0.2)


def _orders(count: int) -> list[dict[str, object]]:
    return [
        {
            "order_id": f"clean-stop-{i}",
            "customer_id": str(17000 + i % 25),
            "order_datetime": f"2011-0{1 + i % 9}-1{i % 10}T10:00:00",
            "country": "United Kingdom",
            "lines": [{"product_id": "85123A", "quantity": 1 + i % 4, "unit_price": 2.55}],
        }
        for i in range(count)
    ]


def test_a_clean_stop_after_work_logs_nothing_at_error_level(tmp_path: Path) -> None:
    with RunningUp(up_environment(tmp_path, RETENTION_LOG_JSON="true")) as up:
        key = up.wait_for(r"dev API key \(tenant 'default', role admin\): (\S+)").group(1)
        headers = {"Authorization": f"Bearer {key}"}
        answer = httpx.post(
            f"http://127.0.0.1:{up.port('ingest')}/v1/orders",
            json={"orders": _orders(60)},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 60
        features = f"http://127.0.0.1:{up.port('features')}/v1/customers/17000/features"
        deadline = time.monotonic() + 60
        while httpx.get(features, headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "the orders never reached the features service"
            time.sleep(0.5)
        up.process.send_signal(signal.SIGTERM)
        up.process.wait(90)
        output = up.stop()

        assert up.process.returncode == 0, output[-3000:]
        problems = [line for line in output.splitlines() if _logged_as_a_problem(line)]
        assert problems == [], "\n".join(problems)
        assert "Unclosed" not in output
        assert busy_ports(up.env) == []


def _logged_as_a_problem(line: str) -> bool:
    """A service's JSON log line at error or critical level, or a traceback."""
    _, _, entry = line.partition("| ")
    if entry.startswith("Traceback"):
        return True
    try:
        level = json.loads(entry).get("level", "")
    except (json.JSONDecodeError, AttributeError):
        return bool(re.search(r"\b(ERROR|CRITICAL)\b", entry))
    return level in ("error", "critical")


def test_a_durable_broker_restart_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    with moto_s3() as endpoint:
        bucket = new_bucket(endpoint)
        env = up_environment(
            tmp_path,
            RETENTION_BROKER_STORAGE=f"s3://{bucket}/",
            RETENTION_S3_ENDPOINT_URL=endpoint,
        )
        with RunningUp(env) as up:
            assert f"keeps its log in s3://{bucket}/" in up.output
            assert f"(embedded Tansu, log in s3://{bucket}/)" in up.output
            key = up.wait_for(r"dev API key \(tenant 'default', role admin\): (\S+)").group(1)
            answer = httpx.post(
                f"http://127.0.0.1:{up.port('ingest')}/v1/orders",
                json={"orders": _orders(20)},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            assert answer.status_code == 200 and answer.json()["accepted"] == 20, answer.text
            mark = len(up.lines)
            up.children()["broker"].send_signal(signal.SIGKILL)

            announced = up.wait_for(r"broker stopped unexpectedly .*", after=mark)
            assert f"its log is kept in s3://{bucket}/" in announced.group(0)
            assert "in memory" not in announced.group(0)
            up.wait_for(rf"broker started again on port {up.port('broker')}", after=mark)
            settings = Settings(kafka_bootstrap=f"127.0.0.1:{up.port('broker')}")
            orders = asyncio.run(
                read_until(
                    settings, Topics.with_prefix("").transactions, lambda got: len(got) >= 20
                )
            )
            assert {r.key for r in orders} >= {f"default:{17000 + i}".encode() for i in range(20)}
            up.stop()
        assert up.process.returncode == 0, up.output[-3000:]
