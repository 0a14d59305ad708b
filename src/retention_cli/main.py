"""`retention`: the commands a person runs: `demo` (the whole product on the bundled data), `up`
(the local stack), `backtest` (an export offline), and the client commands `upload`,
`customers`, `score`, `model` and `runs` (the services' data without writing HTTP)."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import version

from retention_cli import client

# The stack's commands, each in its own module. Only the one being run is imported: `backtest`
# pulls in the trainer (polars, pyarrow, NumPy, XGBoost: ~175 MiB), which `retention up` — a
# process that stays up for as long as the stack does — would otherwise hold for nothing.
STACK_COMMANDS = {
    "up": "retention_cli.up",
    "demo": "retention_cli.demo",
    "backtest": "retention_cli.backtest",
}


def stack_commands_for(arguments: list[str]) -> list[str]:
    """The stack commands whose parsers `arguments` need: the one named, none for a client
    command, all of them otherwise (help, a typo: argparse lists every command)."""
    first = arguments[0] if arguments else None
    if first in STACK_COMMANDS:
        return [first]
    if first in {*client.COMMANDS, "--version"}:
        return []
    return list(STACK_COMMANDS)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="retention", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('retention')}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in stack_commands_for(arguments):
        importlib.import_module(STACK_COMMANDS[name]).add_parser(commands)
    client.add_parsers(commands)
    args = parser.parse_args(arguments)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
