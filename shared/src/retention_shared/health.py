"""Liveness and readiness.

`/healthz` answers 200 while the process and its event loop work (what a liveness probe should
restart on); it reports the broker connection but does not fail on it, so a broker outage does not
restart every pod. `/readyz` answers 200 only when every readiness check passes: connected to the
broker, and whatever the service adds (caught up with a topic, a model loaded, ...).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CheckResult = tuple[bool, str]
Check = Callable[[], Awaitable[CheckResult]]


@dataclass
class Readiness:
    checks: dict[str, Check]

    def __init__(self) -> None:
        self.checks = {}

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def evaluate(self) -> tuple[bool, dict[str, dict[str, object]]]:
        report: dict[str, dict[str, object]] = {}
        for name, check in self.checks.items():
            try:
                ok, detail = await check()
            except Exception as exc:  # a failing check means "not ready", never a 500
                ok, detail = False, f"check failed: {exc}"
            report[name] = {"ok": ok, "detail": detail}
        return all(item["ok"] for item in report.values()), report


class CachedCheck:
    """Runs an expensive check at most once per `ttl` seconds (probes may come often)."""

    def __init__(self, check: Check, ttl: float = 2.0) -> None:
        self.check = check
        self.ttl = ttl
        self._at = 0.0
        self._result: CheckResult = (False, "not checked yet")

    async def __call__(self) -> CheckResult:
        if time.monotonic() - self._at > self.ttl:
            self._result = await self.check()
            self._at = time.monotonic()
        return self._result
