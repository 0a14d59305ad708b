"""The retraining schedule: every `RETENTION_RETRAIN_EVERY_HOURS` (0 = off), each tenant in the lake.

A tenant is due when its latest run (of any outcome, from any trigger) is at least one interval
old, or when it has none. Counting from the run records rather than from start-up means a
restart neither retrains everyone at once nor postpones a due tenant by another interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from retention_shared.tasks import cancel
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.runs.queue import RunManager
from retention_trainer.store import Trigger

__all__ = ["RetrainSchedule", "due_tenants"]

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 60.0


def due_tenants(
    tenants: Iterable[str], last_run_at: dict[str, datetime], now: datetime, every: timedelta
) -> list[str]:
    return sorted(t for t in tenants if t not in last_run_at or now - last_run_at[t] >= every)


class RetrainSchedule:
    def __init__(self, runs: RunManager, lake: LakeConsumer, every_hours: float) -> None:
        self.runs = runs
        self.lake = lake
        self.every = timedelta(hours=every_hours)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.every > timedelta(0):
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel([self._task])

    async def _run(self) -> None:
        pause = min(CHECK_EVERY_SECONDS, self.every.total_seconds())
        while True:
            try:
                async with self.lake.reading() as lake:
                    tenants = await asyncio.to_thread(lake.tenants)
                now = datetime.now(UTC)
                for tenant in due_tenants(tenants, self.runs.store.last_run_at(), now, self.every):
                    self.runs.submit(tenant, Trigger("schedule", f"every {self.every}"))
            except Exception:  # a missed tick is retried at the next one
                log.exception("scheduled retrain check failed")
            await asyncio.sleep(pause)
