"""`retention`'s entry point: each stack command imports only what it runs."""

from __future__ import annotations

import subprocess
import sys

from retention_cli import main

HEAVY = ("polars", "pyarrow", "numpy", "xgboost", "sklearn", "scipy")
# What the process of `retention up` has imported once it has parsed its arguments.
UP_IMPORTS = """
import contextlib, io, sys
from retention_cli.main import main
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    main(["up", "--help"])
print(" ".join(sorted(name for name in sys.argv[1:] if name in sys.modules)))
"""


def test_retention_up_does_not_import_the_backtest_or_the_data_libraries() -> None:
    # `retention up` stays up as long as the stack: the trainer's libraries, which `backtest`
    # imports, were 175 MiB of it for nothing.
    out = subprocess.run(
        [sys.executable, "-c", UP_IMPORTS, *HEAVY], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == []


def test_each_stack_command_builds_only_its_own_parser_and_help_lists_them_all() -> None:
    assert main.stack_commands_for(["up", "--dev"]) == ["up"]
    assert main.stack_commands_for(["backtest", "--data", "x.parquet"]) == ["backtest"]
    assert main.stack_commands_for(["upload", "x.csv"]) == []
    assert main.stack_commands_for([]) == list(main.STACK_COMMANDS)
    assert main.stack_commands_for(["--help"]) == list(main.STACK_COMMANDS)
    assert main.stack_commands_for(["uup"]) == list(main.STACK_COMMANDS)


def test_help_still_names_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "retention_cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in (*main.STACK_COMMANDS, "upload", "customers", "score", "model", "runs"):
        assert command in out.stdout
