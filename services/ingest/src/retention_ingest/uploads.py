"""Running uploads in the background: read, clean and group the file off the event loop, publish
its events, record progress at every step, and ask for a retrain when done.

At most `max_running` uploads run at once (each may use a few hundred MB while grouping); the rest
wait as `queued`. Progress and results live in the ingest store, so status survives a restart.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from retention_ingest import telemetry
from retention_ingest.amendments import Fingerprint, fingerprints
from retention_ingest.bounds import OrderBounds
from retention_ingest.errors import IngestError
from retention_ingest.file_ingest import FileIngestResult, FilePlan, IngestProgress, ingest_file
from retention_ingest.order_events import order_event_payloads
from retention_ingest.publishers.retrain_requests import RetrainRequestsPublisher
from retention_ingest.publishers.transactions import MessageTooLarge, OrderPublisher
from retention_ingest.publishers.upload_events import UploadEventsPublisher
from retention_ingest.store import IngestStore
from retention_ingest.upload_limits import UploadLimits
from retention_shared.events import UploadCompleted
from retention_shared.service import ServiceContext

log = logging.getLogger(__name__)

PUBLISH_BATCH = 5000
PUBLISH_IN_FLIGHT = 3


Prepared = tuple[list[bytes], list[bytes], list[Fingerprint]]


def _next_records(batches: Iterator[pl.DataFrame]) -> Prepared | None:
    """The next batch's keys, payloads and order fingerprints (worker thread), or None when
    all are published."""
    batch = next(batches, None)
    if batch is None:
        return None
    keys = [f"{t}:{c}".encode() for t, c in batch.select("tenant_id", "customer_id").iter_rows()]
    return keys, order_event_payloads(batch), fingerprints(batch)


@dataclass(frozen=True)
class Upload:
    upload_id: str
    tenant_id: str
    plan: FilePlan
    timezone: str
    directory: Path  # the file, the work dir and, when done, rejects.csv
    file: Path
    received_at: datetime  # orders may be dated at most the future skew after this

    @property
    def rejects_csv(self) -> Path:
        return self.directory / "rejects.csv"


class UploadRunner:
    def __init__(
        self,
        ctx: ServiceContext,
        store: IngestStore,
        publisher: OrderPublisher,
        max_running: int = 1,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.publisher = publisher
        self.retrain_requests = RetrainRequestsPublisher(ctx)
        self.upload_events = UploadEventsPublisher(ctx)
        self._slots = asyncio.Semaphore(max_running)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, upload: Upload) -> None:
        telemetry.UPLOADS_IN_FLIGHT.labels(upload.tenant_id).inc()
        task = asyncio.create_task(self._run(upload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, upload: Upload) -> None:
        status: dict[str, Any] = {"timezone": upload.timezone, "layout": upload.plan.layout.value}
        try:
            async with self._slots:
                started = time.monotonic()
                try:
                    await self._process(upload, status)
                finally:
                    telemetry.UPLOAD_DURATION.observe(time.monotonic() - started)
        except IngestError as error:
            self._fail(upload, status, error.as_detail(), error.result)
        except MessageTooLarge as error:  # events published before it stay published
            self._fail(
                upload,
                status,
                {"code": "message_too_large", "field": "file", "problem": str(error)},
            )
        except asyncio.CancelledError:
            self._fail(
                upload,
                status,
                {"code": "interrupted", "field": None, "problem": "the service stopped"},
            )
            raise
        except Exception as exc:  # a broker outage or a bug: the upload fails, the service does not
            log.exception("upload failed", extra={"upload_id": upload.upload_id})
            self._fail(
                upload, status, {"code": "publish_failed", "field": None, "problem": str(exc)}
            )
        finally:
            telemetry.UPLOADS_IN_FLIGHT.labels(upload.tenant_id).dec()
            shutil.rmtree(upload.directory / "work", ignore_errors=True)

    async def _process(self, upload: Upload, status: dict[str, Any]) -> None:
        self.store.update_upload(upload.upload_id, "running", status)

        def on_progress(progress: IngestProgress) -> None:  # called from the worker thread
            status["progress"] = {
                "rows_read": progress.rows_read,
                "accepted": progress.accepted,
                "rejected_by_reason": dict(progress.rejected_by_reason),
                "orders_published": 0,
            }
            self.store.update_upload(upload.upload_id, "running", status)

        result = await asyncio.to_thread(
            ingest_file,
            upload.plan,
            tenant_id=upload.tenant_id,
            source=f"upload:{upload.upload_id}",
            work_dir=upload.directory / "work",
            timezone=upload.timezone,
            on_progress=on_progress,
            bounds=OrderBounds.from_settings(self.ctx.settings),
            received_at=upload.received_at,
            limits=UploadLimits.from_settings(self.ctx.settings),
        )
        telemetry.count_rows(upload.tenant_id, result.accepted, result.rejected_by_reason)
        status["progress"] = self._progress(result, published=0)
        self.store.update_upload(upload.upload_id, "running", status)
        # rejects.csv is written on the other core while the events are published.
        rejects = asyncio.create_task(
            asyncio.to_thread(result.write_rejects_csv, upload.rejects_csv)
        )
        try:
            published = await self._publish(upload, result, status)
        finally:
            await rejects

        await self.retrain_requests.upload_done(upload.tenant_id, upload.upload_id)
        # What a CRM hears as upload.completed (webhooks): published before the status says
        # done, so a client that saw "done" can count on the event being on the topic.
        recorded = self.store.upload(upload.tenant_id, upload.upload_id) or {}
        completed = UploadCompleted(
            tenant_id=upload.tenant_id,
            upload_id=upload.upload_id,
            file=recorded.get("filename") or "",
            rows_read=result.rows_read,
            accepted=result.accepted,
            rejected=result.rejected,
            rejected_by_reason=dict(result.rejected_by_reason),
            orders_published=published,
            first_order_at=result.first_order_at,
            last_order_at=result.last_order_at,
        )
        await self.upload_events.completed(completed)
        status["result"] = result.summary()
        self.store.update_upload(upload.upload_id, "done", status)
        upload.file.unlink(missing_ok=True)  # events are on the topic; rejects.csv stays
        log.info("upload done", extra={"upload_id": upload.upload_id, "events": published})

    async def _publish(
        self, upload: Upload, result: FileIngestResult, status: dict[str, Any]
    ) -> int:
        """Publish every event; the next batch is prepared (off the loop) while up to
        `PUBLISH_IN_FLIGHT` batches wait for acknowledgements, and progress counts only acked ones."""
        batches = result.event_batches(PUBLISH_BATCH)
        in_flight: deque[tuple[asyncio.Task[None], list[Fingerprint]]] = deque()
        published = 0
        try:
            while True:
                prepared = await asyncio.to_thread(_next_records, batches)
                if prepared is not None:
                    keys, payloads, sent = prepared
                    task = asyncio.create_task(
                        self.publisher.publish(upload.tenant_id, keys, payloads)
                    )
                    in_flight.append((task, sent))
                # Wait for the oldest batch when the window is full, and for all at the end.
                while in_flight and (prepared is None or len(in_flight) >= PUBLISH_IN_FLIGHT):
                    task, sent = in_flight.popleft()
                    await task
                    # What consumers hold of each order, for an amendment sent later by HTTP.
                    await asyncio.to_thread(
                        self.store.save_fingerprints, upload.tenant_id, sent, amend=False
                    )
                    published += len(sent)
                    status["progress"] = self._progress(result, published)
                    self.store.update_upload(upload.upload_id, "running", status)
                if prepared is None:
                    return published
        finally:
            for task, _ in in_flight:
                task.cancel()

    @staticmethod
    def _progress(result: FileIngestResult, published: int) -> dict[str, Any]:
        return {
            "rows_read": result.rows_read,
            "accepted": result.accepted,
            "rejected": result.rejected,
            "rejected_by_reason": dict(result.rejected_by_reason),
            "orders": result.order_events,
            "orders_published": published,
        }

    def _fail(
        self, upload: Upload, status: dict[str, Any], error: dict[str, Any], result: Any = None
    ) -> None:
        status["error"] = error
        if isinstance(result, FileIngestResult):
            status["progress"] = self._progress(result, published=0)
            telemetry.count_rows(upload.tenant_id, result.accepted, result.rejected_by_reason)
            result.write_rejects_csv(upload.rejects_csv)
        self.store.update_upload(upload.upload_id, "failed", status)
