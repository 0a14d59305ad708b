"""`retention`: the commands a person runs: `demo` (the whole product on the bundled data), `up`
(the local stack), `backtest` (an export offline), and the client commands `upload`,
`customers`, `score`, `model` and `runs` (the services' data without writing HTTP)."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from retention_cli import client


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="retention", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('retention')}")
    commands = parser.add_subparsers(dest="command", required=True)
    # The stack's commands import the services (seconds); a client command does without them.
    if not (arguments and arguments[0] in {*client.COMMANDS, "--version"}):
        from retention_cli import backtest, demo, up

        up.add_parser(commands)
        demo.add_parser(commands)
        backtest.add_parser(commands)
    client.add_parsers(commands)
    args = parser.parse_args(arguments)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
