"""Erasing a customer from what ingest keeps (`customer-erasures`).

Ingest keeps, per upload, `rejects.csv` (the rejected rows with the file's own columns) and,
for an upload that failed, the uploaded file; and in its SQLite store the fingerprint of every
order published. An erasure removes from the tenant's rejects.csv files every row with a cell
that reads as the customer's id — in any column, since a row may have been rejected because its
columns were shifted — rewrites each file atomically, deletes the kept files of ended uploads
(nothing reads them again, and a compressed or spreadsheet file cannot be filtered row by row),
and forgets the customer's fingerprints — for good: the customer goes on ingest's erasure list,
so their orders dated up to the request, if sent again, are published (features and the lake
skip them) but leave no fingerprint. While an upload of the tenant is still queued or
running, the request waits (it is retried, never dead-lettered): that upload writes its rejects
at the end.

Every instance reads every request (a consumer group named after its data directory), since
each keeps the uploads it received.
"""

from __future__ import annotations

import asyncio
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from retention_ingest.store import IngestStore
from retention_shared.events import CustomerErasureRequested
from retention_shared.kafka.dead_letters import TransientFailure

UNFINISHED = ("queued", "running")


def id_cells(customer_id: str) -> list[str]:
    """The ways a rejects.csv cell holds the id: as sent, written from a float column ("17850.0"),
    or with the leading quote that keeps a formula-like id inert in a spreadsheet."""
    return [customer_id, f"{customer_id}.0", f"'{customer_id}"]


def holds(path: Path, needle: bytes) -> bool:
    """Whether the file's bytes contain `needle` (mapped, not read into memory)."""
    if path.stat().st_size == 0:
        return False
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(needle) != -1


def scrub_csv(path: Path, customer_id: str) -> int:
    """Remove the rows of `path` (a rejects.csv) with a cell that reads as the id; returns how
    many. The file is rewritten beside itself and renamed into place."""
    if not holds(path, customer_id.encode()):
        return 0
    rows = pl.scan_csv(path, infer_schema=False)
    cells = id_cells(customer_id)
    matches = pl.any_horizontal(
        pl.col(name).str.strip_chars().is_in(cells).fill_null(False)
        for name in rows.collect_schema().names()
    )
    removed = int(rows.select(matches.sum()).collect().item())
    if not removed:
        return 0
    temporary = path.with_name(f".{path.name}.tmp")
    rows.filter(~matches).sink_csv(temporary)
    with temporary.open("rb") as file:
        os.fsync(file.fileno())
    temporary.rename(path)
    return removed


@dataclass
class IngestErasure:
    store: IngestStore
    uploads_dir: Path

    async def erase(self, request: CustomerErasureRequested) -> dict[str, int]:
        erasures = self.store.erasures
        if erasures is not None:  # first: orders arriving meanwhile leave no fingerprint
            await asyncio.to_thread(
                erasures.add, request.tenant_id, request.customer_id, request.requested_at
            )
        uploads = self.store.uploads_of(request.tenant_id)
        if any(state in UNFINISHED for _, state in uploads):
            raise TransientFailure("an upload of the tenant is still running; erasing after it")
        return await asyncio.to_thread(self._erase, request, [u for u, _ in uploads])

    def _erase(self, request: CustomerErasureRequested, uploads: list[str]) -> dict[str, int]:
        reject_rows = upload_files = 0
        for upload_id in uploads:
            directory = self.uploads_dir / upload_id
            kept = directory / "upload"
            if kept.exists():
                kept.unlink()
                upload_files += 1
            rejects = directory / "rejects.csv"
            if rejects.exists():
                reject_rows += scrub_csv(rejects, request.customer_id)
        fingerprints = self.store.erase_customer(request.tenant_id, request.customer_id)
        return {
            "reject_rows": reject_rows,
            "upload_files": upload_files,
            "order_fingerprints": fingerprints,
        }
