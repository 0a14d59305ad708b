"""How far ahead of its arrival an event's own time may be: the guard on every tenant clock.

Ingest rejects an order dated more than `max_future_skew_hours` after it arrived. Consumers apply
the same rule to what reaches them by other ways (a producer writing to `transactions` directly),
measured from the record's broker timestamp — so a replay of the same log later decides the same
— but never from a timestamp in the future, which a hostile producer could set.
"""

from __future__ import annotations

import time

US_PER_SECOND = 1_000_000


def latest_event_time_us(arrived_ms: int, skew_hours: float, now: float | None = None) -> int:
    """The latest `occurred_at` (µs since the epoch) an event that arrived at `arrived_ms` may say."""
    now = time.time() if now is None else now
    # No timestamp (-1, or 0 from a client that sets none) is an arrival now.
    arrived = min(arrived_ms / 1000, now) if arrived_ms > 0 else now
    return int((arrived + skew_hours * 3600) * US_PER_SECOND)
