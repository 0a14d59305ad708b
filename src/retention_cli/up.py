"""`retention up`: the embedded broker, the four services and the console on this machine,
supervised until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from retention_cli.shutdown import handle_signals
from retention_cli.stack import CONSOLE, WITH_CONSOLE, Stack, stack_environment
from retention_shared.auth import ApiKeys, AuthConfigError, generate_dev_key
from retention_shared.config import Settings

EPILOG = """\
examples:
  retention up --dev                      # an empty stack and a generated admin key
  RETENTION_API_KEYS="k3y:acme:admin" retention up
"""


def add_parser(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="start the embedded broker, the four services and the console",
        description="Start the embedded broker (or use RETENTION_KAFKA_BOOTSTRAP's), the four "
        "services and the web console on this machine, and keep them running: a crashed "
        "service or broker is started again; Ctrl-C stops everything in order.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "--dev",
        action="store_true",
        help="development mode (RETENTION_DEV_MODE=1): generate an admin key",
    )
    up.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.dev:
        os.environ["RETENTION_DEV_MODE"] = "1"
    settings = Settings()
    api_keys = settings.api_keys.get_secret_value()
    try:
        ApiKeys.from_settings(settings)
    except AuthConfigError as exc:
        print(f"retention up: {exc}", file=sys.stderr)
        return 2
    dev_key = None
    if not api_keys:
        api_keys = generate_dev_key()
        dev_key = api_keys.split(":")[0]
    external = "RETENTION_KAFKA_BOOTSTRAP" in os.environ
    if not external:
        settings = settings.model_copy(
            update={"kafka_bootstrap": f"127.0.0.1:{settings.broker_port}"}
        )
    stack = Stack(
        settings,
        stack_environment(settings, api_keys),
        write=lambda line: print(line, flush=True),
        services=WITH_CONSOLE,
        use_embedded_broker=not external,
    )
    # SIGTERM behaves like Ctrl-C, so the children are stopped in order either way.
    handle_signals(stack.shutdown)
    try:
        stack.start()
    except (RuntimeError, TimeoutError) as exc:
        print(f"retention up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        _print_welcome(stack, dev_key)
        while True:  # the stack's supervisor does the watching
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    print("stopping: " + ", ".join(WITH_CONSOLE) + ", broker", flush=True)
    stack.stop()
    return 0


def _print_welcome(stack: Stack, dev_key: str | None) -> None:
    settings = stack.settings
    print(f"\nRetention is up. Broker: {settings.kafka_bootstrap}" + _broker_kind(stack))
    print(f"  console   http://127.0.0.1:{settings.console_port}   (sign in with an API key)")
    for name in WITH_CONSOLE:
        if name == CONSOLE:
            continue
        port = settings.port_of(name)
        print(
            f"  {name:<9} http://127.0.0.1:{port}   docs: http://127.0.0.1:{port}/docs   metrics: /metrics"
        )
    if dev_key:
        print(f"  dev API key (tenant 'default', role admin): {dev_key}")
        print(
            f"  e.g. curl -H 'Authorization: Bearer {dev_key}' http://127.0.0.1:{settings.features_port}/v1/customers/17850/features"
        )
    print("A crashed service or broker is started again. Ctrl-C stops everything.\n", flush=True)


def _broker_kind(stack: Stack) -> str:
    if stack.broker is None:
        return ""
    if stack.broker.durable:
        return f" (embedded Tansu, log in {stack.broker.storage})"
    return " (embedded Tansu, log in memory: lost if the broker restarts)"
