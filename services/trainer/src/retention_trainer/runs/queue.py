"""The run queue: at most one run per tenant under way, later triggers folded into one follow-up.

Runs a stop or crash left unfinished are queued again on start-up (`resume`), and start from
scratch. What a run does is `execution.py`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.runs.execution import LAKE_WAIT_SECONDS, RunExecutor
from retention_trainer.runs.options import RunOptions
from retention_trainer.store import RunRecord, RunStatus, RunStore, Trigger

__all__ = ["RunManager"]

log = logging.getLogger(__name__)


class RunManager:
    def __init__(
        self,
        ctx: ServiceContext,
        store: RunStore,
        lake: LakeConsumer,
        lake_wait_seconds: float = LAKE_WAIT_SECONDS,
    ) -> None:
        self.store = store
        self.executor = RunExecutor(ctx, store, lake, lake_wait_seconds)
        # The announcer holds it while it compares model-events with the stored champions.
        self.announcing = self.executor.announcing
        self._active: dict[str, asyncio.Task[None]] = {}
        self._follow_up: dict[str, str] = {}
        self._stopping = False

    def submit(
        self, tenant_id: str, trigger: Trigger, options: RunOptions | None = None
    ) -> RunRecord:
        """Start a run of the tenant, or fold the trigger into its one queued follow-up run."""
        follow_up = self._follow_up.get(tenant_id)
        if follow_up is not None:
            record = self.store.get(follow_up)
            assert record is not None
            record.triggers.append(trigger)
            if options is not None and options.as_dict():
                record.options = options.as_dict()  # the latest explicit options apply
            self.store.save(record)
            return record
        record = RunRecord(
            run_id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            status=RunStatus.QUEUED,
            triggers=[trigger],
            options=options.as_dict() if options else {},
            created_at=datetime.now(UTC),
        )
        self.store.add(record)
        self._enqueue(record)
        log.info(
            "run queued",
            extra={"tenant_id": tenant_id, "run_id": record.run_id, "trigger": trigger.kind},
        )
        return record

    def resume(self) -> None:
        """Queue again the runs a stop or crash left unfinished (they start from scratch)."""
        for record in self.store.unfinished():
            follow_up = self._follow_up.get(record.tenant_id)
            if follow_up is not None:  # more than one left over: one follow-up takes them all
                merged = self.store.get(follow_up)
                assert merged is not None
                merged.triggers.extend(record.triggers)
                self.store.save(merged)
                self.executor.finish(
                    record, RunStatus.FAILED, f"merged into run {follow_up} on restart"
                )
                continue
            record.status, record.started_at = RunStatus.QUEUED, None
            record.timings, record.data, record.gate = {}, None, None
            record.run_report = None
            record.message = "resumed after a restart"
            self.store.save(record)
            self._enqueue(record)

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._active.values())
        await cancel(tasks)

    def _enqueue(self, record: RunRecord) -> None:
        tenant = record.tenant_id
        if tenant in self._active:
            self._follow_up[tenant] = record.run_id
            return
        task = asyncio.create_task(self.executor.execute(record), name=f"run-{record.run_id}")
        self._active[tenant] = task
        task.add_done_callback(lambda _: self._done(tenant))

    def _done(self, tenant_id: str) -> None:
        self._active.pop(tenant_id, None)
        follow_up = self._follow_up.pop(tenant_id, None)
        if follow_up is not None and not self._stopping:
            record = self.store.get(follow_up)
            assert record is not None
            self._enqueue(record)
