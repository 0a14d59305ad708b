"""`retention`: the commands a person runs: `demo` (the whole product on the bundled data), `up`
(the local stack), `backtest` (an export offline)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from retention_cli import backtest, demo
from retention_cli.stack import SERVICES, Stack, stack_environment
from retention_shared.auth import ApiKeys, AuthConfigError, generate_dev_key
from retention_shared.config import Settings


def _up(args: argparse.Namespace) -> int:
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
        use_embedded_broker=not external,
    )
    # SIGTERM behaves like Ctrl-C, so the children are stopped in order either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stack.start()
    except (RuntimeError, TimeoutError) as exc:
        print(f"retention up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(
        f"\nRetention is up. Broker: {settings.kafka_bootstrap}"
        + (" (embedded Tansu)" if not external else "")
    )
    for name in SERVICES:
        port = settings.port_of(name)
        print(
            f"  {name:<9} http://127.0.0.1:{port}   docs: http://127.0.0.1:{port}/docs   metrics: /metrics"
        )
    if dev_key:
        print(f"  dev API key (tenant 'default', role admin): {dev_key}")
        print(
            f"  e.g. curl -H 'Authorization: Bearer {dev_key}' http://127.0.0.1:{settings.features_port}/v1/customers/17850/features"
        )
    print("Ctrl-C stops everything.\n", flush=True)
    code = 0
    try:
        while not (dead := stack.exited()):
            time.sleep(0.5)
        names = ", ".join(f"{s.name} (exit {s.process.returncode})" for s in dead)
        print(f"retention up: stopped unexpectedly: {names}; stopping the rest", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        pass
    print("stopping: " + ", ".join(SERVICES) + ", broker", flush=True)
    stack.stop()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retention", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the embedded broker and the four services")
    up.add_argument(
        "--dev",
        action="store_true",
        help="development mode (RETENTION_DEV_MODE=1): generate an admin key",
    )
    up.set_defaults(run=_up)
    demo.add_parser(commands)
    backtest.add_parser(commands)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
