"""Running the four services as real processes against the session's broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retention_cli.stack import SERVICES, WITH_CONSOLE, Stack, stack_environment
from retention_shared.config import Settings
from retention_shared.embedded_broker import free_port

API_KEY = "e2e-key"
READ_KEY = "e2e-read"
API_KEYS = f"{API_KEY}:default:admin,e2e-other:other:admin,{READ_KEY}:default:read"


@contextmanager
def running_stack(
    settings: Settings, log_path: Path, services: tuple[str, ...] = SERVICES, **env: str
) -> Iterator[Stack]:
    """The four services (or `services`, e.g. WITH_CONSOLE) on free ports, logging to
    `log_path`; stopped on exit."""
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
            stack.start(ready_timeout=90)
        except BaseException:
            print(log_path.read_text()[-5000:])
            raise
        try:
            yield stack
        finally:
            stack.stop()


def url(stack: Stack, service: str) -> str:
    return f"http://127.0.0.1:{stack.settings.port_of(service)}"


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
