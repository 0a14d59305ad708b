"""Ingest's own durable state (SQLite under RETENTION_DATA_DIR/ingest): saved tenant mappings,
the status of every upload, and the fingerprint of every order published (`amendments`), so all
survive a restart."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retention_ingest.amendments import Fingerprint
from retention_ingest.mapping import ColumnMapping
from retention_shared.erasure import ErasureList

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
CREATE INDEX IF NOT EXISTS uploads_newest ON uploads (tenant_id, created_at, id);
CREATE TABLE IF NOT EXISTS order_fingerprints (
    tenant_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    occurred_at_us INTEGER NOT NULL,
    content TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, order_id, kind)
) WITHOUT ROWID;
"""


_UPLOAD_COLUMNS = "id, state, filename, bytes, created_at, finished_at, status"
_UPLOAD_KEYS = ("upload_id", "state", "filename", "bytes", "created_at", "finished_at")


def fingerprints_query(pairs: int) -> str:
    """The stored fingerprints of `pairs` (order_id, kind) pairs, then the tenant, bound."""
    wanted = ", ".join(["(?, ?)"] * pairs)
    return (
        f"WITH wanted (order_id, kind) AS (VALUES {wanted}) "
        "SELECT f.order_id, f.kind, f.customer_id, f.occurred_at_us, f.content, f.version "
        "FROM wanted CROSS JOIN order_fingerprints AS f ON f.tenant_id = ? "
        "AND f.order_id = wanted.order_id AND f.kind = wanted.kind"
    )


def _now() -> str:
    # Fixed width (microseconds always written): text order is time order, which paging uses.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _upload_status(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_UPLOAD_KEYS, row[:6], strict=True)) | json.loads(row[6])


class IngestStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # upload progress is written from worker threads
        # Erased customers (`retention_ingest.erasure`): their re-sent history leaves no trace.
        self.erasures: ErasureList | None = None

    def close(self) -> None:
        self._db.close()

    # --- order fingerprints ----------------------------------------------------------------

    def fingerprints(
        self, tenant_id: str, orders: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Fingerprint]:
        """The stored fingerprints of these (order_id, kind) pairs of the tenant.

        One primary-key lookup per pair: the pairs are a table joined to the fingerprints (a
        `tenant_id = ? AND (... OR ...)` filter made SQLite scan all of the tenant's rows, so
        every HTTP order cost time in proportion to the tenant's whole history)."""
        found: dict[tuple[str, str], Fingerprint] = {}
        for start in range(0, len(orders), 400):  # SQLite's bound-parameter limit
            chunk = orders[start : start + 400]
            rows = self._db.execute(
                fingerprints_query(len(chunk)),
                [*(value for pair in chunk for value in pair), tenant_id],
            )
            found.update({(row[0], row[1]): Fingerprint(*row) for row in rows})
        return found

    def save_fingerprints(
        self, tenant_id: str, fingerprints: list[Fingerprint], *, amend: bool
    ) -> None:
        """Remember published orders. `amend`: a higher version replaces the stored one (HTTP
        and `orders.raw`); otherwise the first stays, as consumers keep the first copy. Orders
        of an erased customer dated up to the erasure are not remembered (consumers skip them)."""
        if (erasures := self.erasures) is not None:
            fingerprints = [
                f
                for f in fingerprints
                if not erasures.covers(tenant_id, f.customer_id, f.occurred_at_us)
            ]
        upsert = (
            " ON CONFLICT (tenant_id, order_id, kind) DO UPDATE SET customer_id = "
            "excluded.customer_id, occurred_at_us = excluded.occurred_at_us, content = "
            "excluded.content, version = excluded.version WHERE excluded.version > version"
            if amend
            else " ON CONFLICT DO NOTHING"
        )
        with self._lock, self._db:  # one transaction, not a commit per row
            self._db.execute("BEGIN")
            self._db.executemany(
                f"INSERT INTO order_fingerprints VALUES (?, ?, ?, ?, ?, ?, ?){upsert}",
                [
                    (
                        tenant_id,
                        f.order_id,
                        f.kind,
                        f.customer_id,
                        f.occurred_at_us,
                        f.content,
                        f.version,
                    )
                    for f in fingerprints
                ],
            )

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
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = ? AND tenant_id = ?",
            (upload_id, tenant_id),
        ).fetchone()
        return None if row is None else _upload_status(row)

    def upload_page(
        self, tenant_id: str, limit: int, after: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Up to `limit` of the tenant's uploads' statuses, newest first — by (created_at, id) —
        starting strictly after the key `after` of the previous page's last."""
        where, values = "tenant_id = ?", [tenant_id]
        if after is not None:
            where += " AND (created_at, id) < (?, ?)"
            values += after
        rows = self._db.execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE {where} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (*values, limit),
        )
        return [_upload_status(row) for row in rows]

    def uploads_of(self, tenant_id: str) -> list[tuple[str, str]]:
        """(upload id, state) of every upload of the tenant."""
        rows = self._db.execute("SELECT id, state FROM uploads WHERE tenant_id = ?", (tenant_id,))
        return [(str(upload_id), str(state)) for upload_id, state in rows]

    def erase_customer(self, tenant_id: str, customer_id: str) -> int:
        """Forget what is kept of the customer (their orders' fingerprints), bytes included:
        `secure_delete` zeroes freed space, VACUUM drops stale copies, the WAL is emptied."""
        with self._lock:
            self._db.execute("PRAGMA secure_delete=ON")
            deleted = self._db.execute(
                "DELETE FROM order_fingerprints WHERE tenant_id = ? AND customer_id = ?",
                (tenant_id, customer_id),
            ).rowcount
            if deleted:
                self._db.execute("VACUUM")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

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
