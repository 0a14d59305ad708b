"""Ctrl-C and SIGTERM, any number of times: the first stops the stack, later ones hurry it.

The first signal raises KeyboardInterrupt in the main thread (which then stops the stack in order);
every later one, or any signal while a stop is already under way, only asks the stop to kill what
is still running instead of waiting. A signal never interrupts the stop itself, so no child is
ever left behind holding its port.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from types import FrameType


@dataclass
class Shutdown:
    stopping: threading.Event = field(default_factory=threading.Event)
    hurry: threading.Event = field(default_factory=threading.Event)


def handle_signals(shutdown: Shutdown) -> None:
    """Install the handler for SIGINT and SIGTERM (also when started with SIGINT ignored)."""

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        if shutdown.stopping.is_set():
            shutdown.hurry.set()
            return
        shutdown.stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
