"""Printing the services' answers: JSON as received, tables for people."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def stdout_console() -> Console:
    # Highlighting would colour digits inside ids; markup is never parsed in cells (see `cell`).
    return Console(highlight=False)


def cell(value: Any) -> Text:
    """A table cell shown as it is: ids and texts come from upstream systems, and `[b]` in one
    must not read as rich markup."""
    return Text("–" if value is None else str(value))


def money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def probability(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
