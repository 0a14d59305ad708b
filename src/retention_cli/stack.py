"""The local stack: the embedded broker and the four services as child processes.

Used by `retention up`, the demo and the end-to-end tests. Services start in the order data flows
(ingest first) and stop in the same order, so nothing new enters while the rest drain; the broker
stops last.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, port_in_use

SERVICES = ("ingest", "features", "trainer", "scoring")


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    pump: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _pump(name: str, stream: IO[bytes], write: Callable[[str], None]) -> None:
    """Copy a child's output line by line, prefixed with its name."""
    for raw in iter(stream.readline, b""):
        write(f"{name:<8}| {raw.decode(errors='replace').rstrip()}")


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    write: Callable[[str], None] = print
    services: tuple[str, ...] = SERVICES
    use_embedded_broker: bool = True
    broker: EmbeddedBroker | None = None
    running: list[ServiceProcess] = field(default_factory=list)
    _broker_pump: threading.Thread | None = None

    def start(self, ready_timeout: float = 60.0) -> None:
        if busy := [name for name in self.services if port_in_use(self.settings.port_of(name))]:
            ports = ", ".join(
                f"{n} {self.settings.port_of(n)} (RETENTION_{n.upper()}_PORT)" for n in busy
            )
            raise RuntimeError(f"ports already in use: {ports}")
        try:
            if self.use_embedded_broker:
                self._start_broker()
            for name in self.services:
                self.running.append(self._start_service(name))
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _start_broker(self) -> None:
        self.broker = EmbeddedBroker(
            self.settings, port=self.settings.broker_port, output=subprocess.PIPE
        )
        self.broker.start()
        assert self.broker.process is not None and self.broker.process.stdout is not None
        self._broker_pump = threading.Thread(
            target=_pump, args=("broker", self.broker.process.stdout, self.write), daemon=True
        )
        self._broker_pump.start()
        self.env["RETENTION_KAFKA_BOOTSTRAP"] = self.broker.bootstrap

    def _start_service(self, name: str) -> ServiceProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", f"retention_{name}"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: Ctrl-C reaches only us, and we stop the children in order.
            start_new_session=True,
        )
        assert process.stdout is not None
        pump = threading.Thread(target=_pump, args=(name, process.stdout, self.write), daemon=True)
        pump.start()
        return ServiceProcess(name, self.settings.port_of(name), process, pump)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {service.name: service for service in self.running}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, service in list(pending.items()):
                    if service.process.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {service.process.returncode}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{service.url}/readyz").status_code == 200:
                            del pending[name]
                if pending and time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout}s: {', '.join(pending)}")
                time.sleep(0.2)

    def exited(self) -> list[ServiceProcess]:
        return [service for service in self.running if service.process.poll() is not None]

    def stop(self, timeout: float = 15.0) -> None:
        for service in self.running:
            if service.process.poll() is None:
                service.process.terminate()
                try:
                    service.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait()
            service.pump.join(timeout=2)
        self.running.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def stack_environment(
    settings: Settings, api_keys: str, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The children's environment: the caller's, plus what the stack decided."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "RETENTION_API_KEYS": api_keys,
            "RETENTION_DATA_DIR": str(Path(settings.data_dir).resolve()),
            "RETENTION_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "RETENTION_BROKER_PORT": str(settings.broker_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Trainer and scoring share one local model store unless the caller chose one.
    env.setdefault("BENTOML_HOME", str(Path(settings.data_dir).resolve() / "bentoml"))
    env.update({f"RETENTION_{name.upper()}_PORT": str(settings.port_of(name)) for name in SERVICES})
    return env
