"""Retry waits: full jitter under an exponential ceiling, capped."""

from __future__ import annotations

import random

from retention_webhooks.backoff import retry_delay


def test_waits_stay_under_the_doubling_ceiling_and_the_cap() -> None:
    rng = random.Random(7)
    for attempts in range(1, 12):
        ceiling = min(300.0, 10.0 * 2 ** (attempts - 1))
        waits = [retry_delay(attempts, 10.0, 300.0, rng) for _ in range(2000)]
        assert all(0 <= w <= ceiling for w in waits)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(waits) < 0.05 * ceiling and max(waits) > 0.95 * ceiling
        assert abs(sum(waits) / len(waits) - ceiling / 2) < 0.05 * ceiling


def test_a_huge_attempt_count_does_not_overflow() -> None:
    assert 0 <= retry_delay(10_000, 1.0, 60.0) <= 60.0
