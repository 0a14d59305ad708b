"""When to start a crashed child again: like a compose `restart: on-failure` policy with backoff."""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY = 1.0
LONGEST_DELAY = 30.0
# A child that stayed up this long is healthy again: its next crash waits the first delay.
STABLE_AFTER = 60.0


@dataclass
class RestartBackoff:
    """1 s after a crash, doubling with each crash in a row up to 30 s, and never giving up."""

    first: float = FIRST_DELAY
    longest: float = LONGEST_DELAY
    stable_after: float = STABLE_AFTER
    crashes_in_a_row: int = 0

    def delay_after_crash(self, uptime: float) -> float:
        """Seconds to wait before the next start, given how long the child ran this time."""
        if uptime >= self.stable_after:
            self.crashes_in_a_row = 0
        delay = min(self.first * 2**self.crashes_in_a_row, self.longest)
        self.crashes_in_a_row += 1
        return delay

    @property
    def capped(self) -> bool:
        """Whether the delay reached its ceiling: the child keeps crashing."""
        return self.first * 2 ** (self.crashes_in_a_row - 1) >= self.longest
