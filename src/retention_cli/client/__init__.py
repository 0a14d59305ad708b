"""The client commands: `upload`, `customers`, `score`, `model` and `runs`, for people who work
with the services' data without writing HTTP. They import only httpx, rich and the settings, so
a script calling them in a loop does not pay for the stack's imports."""

from __future__ import annotations

from typing import Any

from retention_cli.client import customers, models, uploads
from retention_cli.client.http import common_options

COMMANDS = frozenset({"upload", "customers", "score", "model", "runs"})


def add_parsers(commands: Any) -> None:
    parent = common_options()
    uploads.add_parser(commands, parent)
    customers.add_parsers(commands, parent)
    models.add_parsers(commands, parent)
