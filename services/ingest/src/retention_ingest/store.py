"""Ingest's own durable state (SQLite under RETENTION_DATA_DIR/ingest): saved tenant mappings
and the status of every upload, so both survive a restart."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retention_ingest.mapping import ColumnMapping

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenant_mappings (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    mapping TEXT,
    timezone TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    filename TEXT,
    bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class IngestStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # upload progress is written from worker threads

    def close(self) -> None:
        self._db.close()

    # --- mappings ------------------------------------------------------------------------

    def save_mapping(
        self,
        tenant_id: str,
        mapping: ColumnMapping | None,
        timezone: str | None,
        name: str = "default",
    ) -> None:
        text = None if mapping is None else mapping.model_dump_json(exclude_none=True)
        with self._lock:
            self._db.execute(
                "INSERT INTO tenant_mappings VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, name) "
                "DO UPDATE SET mapping = excluded.mapping, timezone = excluded.timezone, "
                "updated_at = excluded.updated_at",
                (tenant_id, name, text, timezone, _now()),
            )

    def delete_mapping(self, tenant_id: str, name: str = "default") -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM tenant_mappings WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            )

    def mapping(
        self, tenant_id: str, name: str = "default"
    ) -> tuple[ColumnMapping | None, str | None]:
        row = self._db.execute(
            "SELECT mapping, timezone FROM tenant_mappings WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
        ).fetchone()
        if row is None:
            return None, None
        return (None if row[0] is None else ColumnMapping.parse(row[0])), row[1]

    # --- uploads -------------------------------------------------------------------------

    def create_upload(
        self,
        upload_id: str,
        tenant_id: str,
        filename: str | None,
        size: int,
        status: dict[str, Any],
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO uploads VALUES (?, ?, 'queued', ?, ?, ?, NULL, ?)",
                (upload_id, tenant_id, filename, size, _now(), json.dumps(status)),
            )

    def update_upload(self, upload_id: str, state: str, status: dict[str, Any]) -> None:
        finished = _now() if state in ("done", "failed") else None
        with self._lock:
            self._db.execute(
                "UPDATE uploads SET state = ?, status = ?, finished_at = coalesce(?, finished_at) "
                "WHERE id = ?",
                (state, json.dumps(status, default=str), finished, upload_id),
            )

    def upload(self, tenant_id: str, upload_id: str) -> dict[str, Any] | None:
        """An upload's status, only if it belongs to `tenant_id`."""
        row = self._db.execute(
            "SELECT id, state, filename, bytes, created_at, finished_at, status FROM uploads "
            "WHERE id = ? AND tenant_id = ?",
            (upload_id, tenant_id),
        ).fetchone()
        if row is None:
            return None
        keys = ("upload_id", "state", "filename", "bytes", "created_at", "finished_at")
        return dict(zip(keys, row[:6], strict=True)) | json.loads(row[6])

    def interrupt_unfinished(self) -> int:
        """Uploads left queued or running by a previous process cannot resume: mark them failed."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE uploads SET state = 'failed', finished_at = ?, status = json_set(status, "
                "'$.error', json_object('code', 'interrupted', 'field', NULL, 'problem', "
                "'the service restarted during this upload; upload the file again (same event "
                "ids, nothing is counted twice)')) WHERE state IN ('queued', 'running')",
                (_now(),),
            )
        return cursor.rowcount
