"""`retention up` as a person runs it: one command, everything ready, Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from retention_cli.stack import SERVICES, WITH_CONSOLE
from retention_shared.embedded_broker import free_port

pytestmark = pytest.mark.slow


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    env.update(
        {f"RETENTION_{name.upper()}_PORT": str(free_port()) for name in (*WITH_CONSOLE, "broker")}
    )
    env.update(RETENTION_DATA_DIR=str(tmp_path / "data"), RETENTION_LOG_JSON="false", **extra)
    return env


def _up(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "retention_cli.main", "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_what_is_left(process: subprocess.Popen[str]) -> None:
    """After a failed assertion, nothing the run started may outlive the test."""
    if process.poll() is not None:
        return
    for child in psutil.Process(process.pid).children(recursive=True):
        child.kill()
    process.kill()
    process.wait()


def test_up_in_dev_mode_starts_everything_prints_a_key_and_stops_on_ctrl_c(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = _environment(tmp_path)
    process = _up(env, "--dev")
    request.addfinalizer(lambda: _kill_what_is_left(process))
    output: list[str] = []
    deadline = time.monotonic() + 90
    assert process.stdout is not None
    while not any("Ctrl-C stops everything" in line for line in output):
        line = process.stdout.readline()
        assert line or process.poll() is None, "".join(output)
        output.append(line)
        assert time.monotonic() < deadline, "".join(output[-30:])
    text = "".join(output)
    key = re.search(r"dev API key \(tenant 'default', role admin\): (\S+)", text)
    assert key, text
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) == 7  # broker, four services, webhooks, console

    for name in SERVICES:
        port = env[f"RETENTION_{name.upper()}_PORT"]
        assert f"{name:<9} http://127.0.0.1:{port}" in text
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    console = env["RETENTION_CONSOLE_PORT"]
    assert f"console   http://127.0.0.1:{console}" in text
    assert "Sign in to Retention" in httpx.get(f"http://127.0.0.1:{console}/signin").text
    # The printed key works, and it belongs to tenant "default".
    features = httpx.get(
        f"http://127.0.0.1:{env['RETENTION_FEATURES_PORT']}/v1/customers/17850/features",
        headers={"Authorization": f"Bearer {key.group(1)}"},
    )
    assert features.status_code == 404
    # Service logs are streamed with a prefix.
    assert re.search(r"^scoring \| .*connected to broker", text, re.MULTILINE)

    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "stopping: " + ", ".join(WITH_CONSOLE) + ", broker" in rest
    assert WITH_CONSOLE == ("ingest", "features", "trainer", "scoring", "webhooks", "console")
    assert not [
        child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]


def test_up_without_keys_outside_dev_mode_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "retention_cli.main", "up"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no API keys configured" in result.stderr


def test_a_service_started_alone_without_keys_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "retention_scoring"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stdout + result.stderr
