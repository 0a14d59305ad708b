"""The local stack: the embedded broker, the four services, webhooks and the console as supervised
children.

Used by `retention up`, the demo and the end-to-end tests. Services start in the order data flows
(ingest first) and stop in the same order, so nothing new enters while the rest drain; the broker
stops last. Once up, a supervisor thread starts again, with backoff, a service that crashed
(`restart: on-failure`: one stopped on purpose stays down) and the embedded broker whenever it stops.
Children die with this process, even when it is killed (see retention_shared.child_process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from retention_cli.restarts import RestartBackoff
from retention_cli.shutdown import Shutdown
from retention_shared import child_process
from retention_shared.child_process import describe_exit
from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, port_in_use

SERVICES = ("ingest", "features", "trainer", "scoring")
# Webhooks announce what scoring, the trainer and ingest publish: started after them.
WEBHOOKS = "webhooks"
# The web console talks only to the services' HTTP APIs; it starts after them.
CONSOLE = "console"
# Everything `retention up` and the demo start, in start (and stop) order.
WITH_CONSOLE = (*SERVICES, WEBHOOKS, CONSOLE)
SUPERVISE_EVERY = 0.25
# Exits that were asked for (uvicorn re-raises SIGTERM/SIGINT after a graceful stop): on-failure
# leaves such a service down; anything else (an error exit, SIGKILL, a segfault) is a crash.
ASKED_TO_STOP = {0, -signal.SIGTERM, -signal.SIGINT}


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    pump: threading.Thread
    started_at: float = field(default_factory=time.monotonic)
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    # Set while a crashed service waits for its next start.
    restart_at: float | None = None
    # It exited cleanly (asked to): on-failure leaves it down.
    stays_down: bool = False

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
    supervise: bool = True
    shutdown: Shutdown = field(default_factory=Shutdown)
    broker: EmbeddedBroker | None = None
    running: list[ServiceProcess] = field(default_factory=list)
    _broker_pump: threading.Thread | None = None
    _broker_backoff: RestartBackoff = field(default_factory=RestartBackoff)
    _broker_started_at: float = 0.0
    _broker_restart_at: float | None = None
    _supervisor: threading.Thread | None = None

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
        if self.supervise:
            self._supervisor = threading.Thread(
                target=self._supervise, name="stack-supervisor", daemon=True
            )
            self._supervisor.start()

    def say(self, line: str) -> None:
        """A line of the stack's own, among the children's."""
        self.write(f"{'stack':<8}| {line}")

    def _start_broker(self) -> None:
        if self.broker is None:
            self.broker = EmbeddedBroker(
                self.settings,
                port=self.settings.broker_port,
                storage_engine=self.settings.broker_storage,
                output=subprocess.PIPE,
            )
            self.say(broker_storage_note(self.broker))
        self.broker.start()
        self._broker_started_at = time.monotonic()
        assert self.broker.process is not None and self.broker.process.stdout is not None
        self._broker_pump = threading.Thread(
            target=_pump, args=("broker", self.broker.process.stdout, self.write), daemon=True
        )
        self._broker_pump.start()
        self.env["RETENTION_KAFKA_BOOTSTRAP"] = self.broker.bootstrap

    def _start_service(self, name: str) -> ServiceProcess:
        process = child_process.spawn(
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

    def _supervise(self) -> None:
        while not self.shutdown.stopping.wait(SUPERVISE_EVERY):
            try:
                self.check()
            except Exception as error:  # keep supervising whatever one check ran into
                self.say(f"supervision failed once, carrying on: {error!r}")

    def check(self) -> None:
        """One round of supervision: notice what stopped, start what is due (the supervisor
        thread calls this every SUPERVISE_EVERY seconds)."""
        self._watch_broker()
        for service in self.running:
            if self.shutdown.stopping.is_set():
                return
            self._watch_service(service)

    def _watch_service(self, service: ServiceProcess) -> None:
        code = service.process.poll()
        if code is None or service.stays_down:
            return
        now = time.monotonic()
        if service.restart_at is None:
            if code in ASKED_TO_STOP:
                service.stays_down = True
                self.say(f"{service.name} stopped ({describe_exit(code)}); not restarted")
                return
            service.pump.join(timeout=1)  # its last lines before ours
            uptime = now - service.started_at
            delay = service.backoff.delay_after_crash(uptime)
            service.restart_at = now + delay
            self.say(
                f"{service.name} crashed ({describe_exit(code)}) after {uptime:.1f}s; "
                f"restart {service.backoff.crashes_in_a_row} in {delay:g}s"
                + _still_crashing(service.backoff)
            )
        elif now >= service.restart_at:
            try:
                restarted = self._start_service(service.name)
            except OSError as error:  # could not even be started: wait as after a crash
                delay = service.backoff.delay_after_crash(uptime=0.0)
                service.restart_at = now + delay
                self.say(f"{service.name} could not be started ({error}); next try in {delay:g}s")
                return
            service.process, service.pump = restarted.process, restarted.pump
            service.started_at, service.restart_at = restarted.started_at, None
            self.say(f"{service.name} started again (pid {service.process.pid})")

    def _watch_broker(self) -> None:
        broker = self.broker
        if broker is None or broker.process is None or (code := broker.process.poll()) is None:
            return
        now = time.monotonic()
        if self._broker_restart_at is None:
            if self._broker_pump is not None:
                self._broker_pump.join(timeout=1)
            uptime = now - self._broker_started_at
            delay = self._broker_backoff.delay_after_crash(uptime)
            self._broker_restart_at = now + delay
            self.say(
                f"broker stopped unexpectedly ({describe_exit(code)}) after {uptime:.1f}s; "
                + _broker_loss(broker)
                + f" Restarting it on port {broker.port} in {delay:g}s"
                + " with the topics created again."
                + _still_crashing(self._broker_backoff)
            )
        elif now >= self._broker_restart_at:
            try:
                self._start_broker()
            except (RuntimeError, TimeoutError, OSError) as error:
                self._broker_started_at, self._broker_restart_at = time.monotonic(), None
                self.say(f"broker did not start again: {error}")
                return  # the next round sees it down again and waits a longer backoff
            self._broker_restart_at = None
            self.say(
                f"broker started again on port {broker.port} (pid {broker.process.pid}); "
                "topics created again; services reconnect by themselves"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """Services in data-flow order, then the broker; a set `shutdown.hurry` kills at once.
        Every child is waited for, so their ports are free when this returns."""
        self.shutdown.stopping.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout=60)  # a broker restart under way finishes first
        hurried = False
        for service in self.running:
            if self.shutdown.hurry.is_set() and not hurried:
                hurried = True
                self.say("asked again: killing what is still running")
            child_process.stop(service.process, timeout, self.shutdown.hurry)
            service.pump.join(timeout=2)
        self.running.clear()
        if self.broker is not None:
            self.broker.stop(hurry=self.shutdown.hurry)
            self.broker = None
        if self._broker_pump is not None:
            self._broker_pump.join(timeout=2)


def broker_storage_note(broker: EmbeddedBroker) -> str:
    if broker.durable:
        return f"embedded broker on port {broker.port} keeps its log in {broker.storage}"
    return (
        f"embedded broker on port {broker.port} keeps its log in memory: if it stops, every "
        "record of every topic and every committed offset is lost (set RETENTION_BROKER_STORAGE "
        "to s3://bucket/ or postgres://... to keep them)"
    )


def _broker_loss(broker: EmbeddedBroker) -> str:
    """What went with the broker, for the announcement of its restart."""
    if broker.durable:
        return f"its log is kept in {broker.storage}, so acknowledged records are not lost."
    return (
        "it kept its log in memory, so every record of every topic and every committed consumer "
        "offset is lost: orders the features service had not applied yet are gone, and it "
        "starts again empty. State under the data directory (features state, lake, models) is "
        "kept; a service that keeps offsets of its own (features) finds them beyond the new "
        "log's end and has to rebuild."
    )


def _still_crashing(backoff: RestartBackoff) -> str:
    if not backoff.capped:
        return ""
    return (
        f" (crashed {backoff.crashes_in_a_row} times in a row: retrying every "
        f"{backoff.longest:g}s until it stays up)"
    )


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
    env.update(
        {f"RETENTION_{name.upper()}_PORT": str(settings.port_of(name)) for name in WITH_CONSOLE}
    )
    return env
