"""`retention up` as a real process on free ports, its output collected while it runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from retention_cli.stack import WITH_CONSOLE
from retention_shared.embedded_broker import free_port, port_in_use

READY_LINE = "Ctrl-C stops everything"


def up_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    env.update(
        {f"RETENTION_{name.upper()}_PORT": str(free_port()) for name in (*WITH_CONSOLE, "broker")}
    )
    env.update(RETENTION_DATA_DIR=str(tmp_path / "data"), RETENTION_LOG_JSON="false")
    env.update(extra)
    return env


class RunningUp:
    """`retention up --dev`, started and (unless `ready_timeout` is None) waited for until it
    says everything is up."""

    def __init__(self, env: dict[str, str], ready_timeout: float | None = 120.0) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "retention_cli.main", "up", "--dev"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if ready_timeout is not None:
            try:
                self.wait_for(READY_LINE, ready_timeout)
            except BaseException:
                self.kill()
                raise

    def __enter__(self) -> RunningUp:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()

    def kill(self) -> None:
        """Whatever a failed test left running: its children die with it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match[str]:
        """The first match of `pattern` in a line from index `after` on, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[after:]:
                if match := re.search(pattern, line):
                    return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} after {timeout}s:\n{self.output[-6000:]}")
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"retention up exited before {pattern!r}:\n{self.output}")
            time.sleep(0.1)

    def port(self, name: str) -> int:
        return int(self.env[f"RETENTION_{name.upper()}_PORT"])

    def children(self) -> dict[str, psutil.Process]:
        """The live children by name: the four services, `console` and `broker`."""
        found = {}
        for child in psutil.Process(self.process.pid).children():
            with_args = " ".join(child.cmdline())
            name = next((s for s in WITH_CONSOLE if f"retention_{s}" in with_args), None)
            found[name or ("broker" if "tansu" in with_args else with_args)] = child
        return found

    def stop(self, timeout: float = 90.0) -> str:
        """Ctrl-C and the rest of the output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout)
        self._reader.join(timeout=10)
        return self.output


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def still_alive(processes: list[psutil.Process], timeout: float = 30.0) -> list[psutil.Process]:
    """Those of `processes` still alive (not zombies) after waiting up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def busy_ports(env: dict[str, str]) -> list[int]:
    ports = [int(env[f"RETENTION_{n.upper()}_PORT"]) for n in (*WITH_CONSOLE, "broker")]
    return [port for port in ports if port_in_use(port)]


def leftovers(env: dict[str, str]) -> list[psutil.Process]:
    """Live processes started for this run (they carry its data directory in their environment),
    whoever their parent is now."""
    data_dir = str(Path(env["RETENTION_DATA_DIR"]).resolve())
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("RETENTION_DATA_DIR") == data_dir and _alive(process):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found
