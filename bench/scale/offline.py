"""The offline floor: `retention backtest` on the same k-file, in a process of its own.

The child runs the CLI's `backtest --json` (ingest's cleaning, then the trainer's training and
rolling backtest, in one process, no broker) and reports its own peak memory from
/proc/self/status VmHWM — not `ru_maxrss`, which Linux carries over from the parent across
fork and exec — and its CPU seconds. `OMP_WAIT_POLICY=PASSIVE` as the trainer service sets it,
so both train alike on a shared machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MARK = "OFFLINE-RESULT "
CHILD = f"""
import json, resource, sys, time
from retention_cli.main import main

with open(sys.argv[2], "w") as out:
    sys.stdout = out
    code = main(["backtest", "--data", sys.argv[1], "--json"])
    sys.stdout = sys.__stdout__
usage = resource.getrusage(resource.RUSAGE_SELF)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print({MARK!r} + json.dumps({{
    "code": code, "peak_bytes": hwm * 1024, "cpu_seconds": usage.ru_utime + usage.ru_stime,
}}), file=sys.stderr)
"""


@dataclass(frozen=True)
class Offline:
    seconds: float
    peak_bytes: int
    cpu_seconds: float
    churn_auc: float | None
    ok: bool
    detail: str = ""


def backtest(data: Path, work: Path, timeout: float) -> Offline:
    report = work / "backtest.json"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    found = [line for line in done.stderr.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not found:
        return Offline(seconds, 0, 0.0, None, False, done.stderr[-2000:])
    result = json.loads(found[-1][len(MARK) :])
    auc = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        auc = json.loads(report.read_text())["churn"]["model"].get("roc_auc")
    return Offline(seconds, result["peak_bytes"], result["cpu_seconds"], auc, result["code"] == 0)
