"""Starting the training child and following it, from the trainer process.

A run's training (`candidate.py`) happens in a child Python process started for that run
(`child_main.py`), so scikit-learn never loads into the trainer and the run's memory goes back to
the system when the child exits. Nothing is pickled: the request goes as JSON in the run's
directory, the child's progress and result come back as JSON lines on a pipe, and a promoted
bundle as the bundle's own files. The child dies with the trainer (`retention_shared.child_process`)
and is stopped when the run is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from retention_shared import child_process
from retention_shared.child_process import describe_exit

__all__ = ["FINAL_EVENTS", "ChildFailed", "train_in_child"]

# The events that end a child's report; exactly one comes last when the child ends normally.
FINAL_EVENTS = frozenset({"candidate", "skipped", "error"})
# How long a cancelled run's child has after SIGTERM before SIGKILL.
STOP_SECONDS = 5.0


class ChildFailed(Exception):
    """The child ended without a result (killed, out of memory, crashed) or reported an error."""


def _command(run_dir: Path, events_fd: int) -> list[str]:
    module = "retention_trainer.runs.child_main"
    return [sys.executable, "-m", module, str(run_dir), str(events_fd)]


def _pump(stream: IO[bytes], put: Callable[[dict[str, Any] | None], None]) -> None:
    """Hand each JSON line to the event loop; None at the end of the stream."""
    with stream:
        for line in stream:
            with contextlib.suppress(ValueError):  # a torn last line from a killed child
                put(json.loads(line))
    put(None)


async def train_in_child(
    run_dir: Path, request: dict[str, Any], on_event: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Run one training in a child; `on_event` sees every progress event as it comes.

    Returns the final event (``candidate`` or ``skipped``); raises `ChildFailed` with the
    child's own error message, or its exit status when it ended without one.
    """
    (run_dir / "request.json").write_text(json.dumps(request))
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.to_thread(
            child_process.spawn, _command(run_dir, write_fd), pass_fds=(write_fd,)
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds the only write end: EOF when it exits

    def put(event: dict[str, Any] | None) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    reader = os.fdopen(read_fd, "rb")
    threading.Thread(target=_pump, args=(reader, put), name="training-child", daemon=True).start()
    final: dict[str, Any] | None = None
    try:
        while (event := await events.get()) is not None:
            if event.get("event") in FINAL_EVENTS:
                final = event
            else:
                on_event(event)
        code = await asyncio.to_thread(process.wait)
    except BaseException:  # cancelled (shutdown): the child must not train on unobserved
        await asyncio.to_thread(child_process.stop, process, STOP_SECONDS, None)
        raise
    if final is None:
        raise ChildFailed(f"the training process ended without a result ({describe_exit(code)})")
    if final["event"] == "error":
        raise ChildFailed(str(final.get("message")))
    return final
