"""When a failed delivery is tried again: exponential backoff with full jitter.

The wait before attempt n+1 is uniform in [0, min(cap, base * 2**(n-1))] (AWS's "full
jitter"): subscribers that failed together are not all tried again at the same moment.
"""

from __future__ import annotations

import random


def retry_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (attempts >= 1)."""
    ceiling = min(cap, base * 2 ** min(attempts - 1, 62))
    return (rng or random).uniform(0, ceiling)
