"""py-spy attached to every Python service of the stack for the pipeline (`--py-spy`), and the
functions each spent its samples in.

The profiles are py-spy's raw collapsed stacks (`<frame>;<frame>;… <count>` per line, root
first), one file per service in the kept work dir. `hot_functions` reads one back: for each
function (`name (file:line)` without the line), the share of samples it is on the stack
(inclusive) and at the top (self), over the busy samples: those not waiting in the event
loop's `select` or an idle worker thread's queue (py-spy counts a thread blocked in a system
call as active, so without this the shares would be of wall time, not of work).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE = 50  # samples per second per process: five processes on two cores


@contextlib.contextmanager
def recording(py_spy: Path | None, pids: dict[str, int], directory: Path) -> Iterator[None]:
    """Record each of `pids` (name → pid) into `directory/py-spy-<name>.txt` meanwhile."""
    if py_spy is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    processes = [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(directory / f"py-spy-{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(60)
        print(f"  profiles: {directory}/py-spy-<service>.txt", flush=True)


_LINE = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """`name (path:line)` → `name (path)`: one entry per function, not per line."""
    return _LINE.sub(")", frame)


IDLE = ("select (selectors.py)", "wait (threading.py)", "get (queue.py)", "sleep")


def hot_functions(path: Path, top: int = 15) -> list[tuple[str, float, float]]:
    """(function, inclusive share, self share) of the `top` functions by inclusive share of the
    busy samples, leaving out the event loop's and the thread pool's own frames (on every
    stack)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(frame) for frame in stack.split(";")]
        if any(idle in frames[-1] for idle in IDLE):
            continue
        n = int(count)
        samples += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not samples:
        return []
    boring = ("asyncio", "threading.py", "concurrent/futures", "<module>", "uvicorn", "runpy")
    boring += ("run_service",)
    ranked = [
        (frame, count / samples, own[frame] / samples)
        for frame, count in inclusive.most_common()
        if not any(word in frame for word in boring)
    ]
    return ranked[:top]
