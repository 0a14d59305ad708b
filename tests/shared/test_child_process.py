"""Children that die with their parent, whichever thread started them, and stops that hurry."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from retention_shared.child_process import describe_exit, spawn, stop

IGNORES_SIGTERM = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True);"
    " time.sleep(120)",
]


def test_a_child_started_from_a_thread_that_ends_lives_on() -> None:
    # The kernel's parent-death signal follows the forking *thread*: a restart made by a
    # supervisor thread must not die when that thread does.
    started: list[subprocess.Popen[bytes]] = []

    def start_and_outlive_the_request() -> None:
        child = spawn([*IGNORES_SIGTERM], stdout=subprocess.PIPE)
        assert child.stdout is not None
        child.stdout.readline()  # past the wrapper: the death signal is now requested
        started.append(child)

    starter = threading.Thread(target=start_and_outlive_the_request)
    starter.start()
    starter.join()
    child = started[0]
    try:
        time.sleep(1.0)
        assert child.poll() is None
    finally:
        stop(child, 0, None)
    assert child.returncode is not None


def test_hurry_turns_the_wait_for_a_stubborn_child_into_a_kill() -> None:
    child = spawn(IGNORES_SIGTERM, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    hurry = threading.Event()
    threading.Timer(0.5, hurry.set).start()
    began = time.monotonic()
    stop(child, 120, hurry)
    assert time.monotonic() - began < 60  # not the 120 s the timeout allows
    assert describe_exit(child.returncode) == "killed by SIGKILL"


def test_exits_are_described_for_people() -> None:
    assert describe_exit(3) == "exit 3"
    assert describe_exit(-15) == "killed by SIGTERM"
