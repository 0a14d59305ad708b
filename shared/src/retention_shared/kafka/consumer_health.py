"""Whether a consumer is moving: what `/readyz` says about a consumer that fails or stalls.

A consumer reports each batch it applied (`progressed`), each batch it could not apply
(`failed`, with the error) and, when it sees them, its partitions' lag and a lost log. Readiness
is false while the last attempt failed, while it has been behind without progress for
`stall_seconds`, and while it rebuilds after its broker lost the log — so a stuck consumer takes
its instance out of rotation and the alert on readiness fires, instead of lag reading 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from retention_shared.health import CheckResult

STALL_SECONDS = 60.0


@dataclass
class ConsumerHealth:
    stall_seconds: float = STALL_SECONDS
    last_progress: float = field(default_factory=time.monotonic)
    failure: str | None = None
    failing_since: float | None = None
    lag: int = 0
    # Why the consumer is rebuilding (e.g. the broker lost the log), until it caught up again.
    rebuilding: dict[int, str] = field(default_factory=dict)

    def progressed(self) -> None:
        self.last_progress = time.monotonic()
        self.failure = self.failing_since = None

    def failed(self, error: BaseException) -> None:
        self.failure = f"{type(error).__name__}: {error}"[:300]
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def behind(self, lag: int) -> None:
        if lag and not self.lag:  # stalling counts from when it fell behind, not from idle time
            self.last_progress = max(self.last_progress, time.monotonic())
        self.lag = lag

    def check(self) -> CheckResult:
        if self.failure is not None:
            assert self.failing_since is not None
            since = time.monotonic() - self.failing_since
            return False, f"failing for {since:.0f}s: {self.failure}"
        if self.rebuilding:
            return False, "; ".join(
                f"partition {p}: {why}" for p, why in sorted(self.rebuilding.items())
            )
        stalled = time.monotonic() - self.last_progress
        if self.lag and stalled > self.stall_seconds:
            return False, f"stuck: {self.lag} records behind and no progress for {stalled:.0f}s"
        return True, f"lag {self.lag}"
