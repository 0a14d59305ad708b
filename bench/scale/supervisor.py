"""A stand-in for `retention up`'s own process, so the stack's totals count it.

bench/scale runs the stack's supervisor (`retention_cli.stack.Stack`) inside the benchmark's
process, whose memory is the benchmark's (polars for the k-files, the sampler's samples), not
the supervisor's. Every user of `retention up` pays for that process too, so the benchmark
starts a fresh interpreter that imports exactly what `retention up` imports (the CLI's entry
point and the `up` command, as `retention_cli.main` does) and then waits, and samples it as
the `supervisor`. What it leaves out is what the real one does once running: its threads (one
log pump per child, the supervision loop) and their stacks — measured at +2 MiB RSS on the
empty stack (docs/capacity.md, "Memory at 1x").
"""

from __future__ import annotations

import subprocess
import sys

NAME = "supervisor"
IMPORTS = """
import importlib, sys
from retention_cli import main
for command in main.stack_commands_for(["up"]):
    importlib.import_module(main.STACK_COMMANDS[command])
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
"""


def start_standin() -> subprocess.Popen[bytes]:
    """The stand-in, once it has imported everything (it exits when its stdin closes)."""
    process = subprocess.Popen(
        [sys.executable, "-c", IMPORTS], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        process.kill()
        raise RuntimeError("the supervisor stand-in did not start")
    return process


def stop_standin(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
