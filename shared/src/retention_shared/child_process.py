"""Child processes that never outlive the process that started them, and stop on request.

On Linux every child is started through this module run as a program (`python -m
retention_shared.child_process PARENT_PID COMMAND...`): it asks the kernel for SIGKILL when its
parent goes (PR_SET_PDEATHSIG) and then execs COMMAND, which keeps the setting, the PID and the
pipes. So a `retention up` that is killed outright takes its broker and services with it.

The kernel sends that signal when the *thread* that forked the child ends, not the process: every
child is therefore forked by one long-lived thread, so a child restarted from a supervisor thread
does not die when that thread does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1

_forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-forker")


def guarded(command: list[str]) -> list[str]:
    """`command`, run so that it is killed when this process ends (Linux; as it is elsewhere)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-m", "retention_shared.child_process", str(os.getpid()), *command]


def spawn(command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start `command` as a child that dies with this process; `popen` as for subprocess.Popen."""

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(guarded(command), **popen)

    started = _forker.submit(start)
    try:
        return started.result()
    except BaseException:
        # Interrupted while it starts: do not leave a child running that nobody will stop.
        with contextlib.suppress(Exception):
            process = started.result(timeout=30)
            process.kill()
            process.wait()
        raise


def stop(process: subprocess.Popen[Any], timeout: float, hurry: threading.Event | None) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds or as soon as `hurry` is set; waits for it."""
    if process.poll() is None:
        process.terminate()
    remaining = timeout
    while process.poll() is None and remaining > 0 and not (hurry and hurry.is_set()):
        try:
            process.wait(min(0.1, remaining))
        except subprocess.TimeoutExpired:
            remaining -= 0.1
    if process.poll() is None:
        process.kill()
    process.wait()


def describe_exit(code: int) -> str:
    """`exit 3`, or `killed by SIGKILL` for a negative return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _die_with_parent_then_exec(parent: int, command: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent went before the request was made
        sys.exit(1)
    os.execvp(command[0], command)


if __name__ == "__main__":
    _die_with_parent_then_exec(int(sys.argv[1]), sys.argv[2:])
