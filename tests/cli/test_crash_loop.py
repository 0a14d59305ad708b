"""A service that keeps crashing keeps being started again, at the capped delay, and says so."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

from retention_cli.restarts import RestartBackoff
from retention_cli.stack import ServiceProcess, Stack
from retention_shared.config import Settings


def _crashing(name: str) -> ServiceProcess:
    process = subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit(3)"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pump = threading.Thread(target=lambda: None)  # no output to copy
    pump.start()
    return ServiceProcess(name, 0, process, pump)


def test_a_service_that_keeps_crashing_is_retried_at_the_capped_delay_for_ever() -> None:
    lines: list[str] = []
    stack = Stack(Settings(), env={}, write=lines.append, services=(), use_embedded_broker=False)
    stack._start_service = _crashing  # type: ignore[method-assign]  # a service that always fails
    service = _crashing("features")
    service.backoff = RestartBackoff(first=0.01, longest=0.04)
    stack.running.append(service)

    deadline = time.monotonic() + 60
    while sum("started again" in line for line in lines) < 6:
        assert time.monotonic() < deadline, "\n".join(lines)
        stack.check()
        time.sleep(0.01)

    crashes = [line for line in lines if "features crashed" in line]
    assert all("(exit 3)" in line for line in crashes)
    delays = [float(re.search(r"in ([\d.]+)s", line).group(1)) for line in crashes]  # type: ignore[union-attr]
    assert delays[:6] == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04]
    assert "retrying" not in crashes[1]
    assert "(crashed 3 times in a row: retrying every 0.04s until it stays up)" in crashes[2]
    assert all("retrying every 0.04s" in line for line in crashes[2:])
