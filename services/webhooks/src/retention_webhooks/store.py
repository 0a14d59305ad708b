"""Subscriptions, the messages to send and every delivery's state, in one SQLite file.

The dispatcher records each event's message and its deliveries (one per subscription that
wants it) in one transaction before committing the event's offset; the deliverer then works
from this table, so a crash between the two re-reads the event and records nothing twice
(deliveries are keyed by subscription and message id), and a crash during delivery resumes
from the table. Times are unix seconds (floats) in the table and aware datetimes outside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "Delivery",
    "DeliveryState",
    "DueDelivery",
    "Message",
    "Subscription",
    "WebhookStore",
]


class DeliveryState(StrEnum):
    PENDING = "pending"  # not attempted yet
    RETRYING = "retrying"  # attempted, failed, another attempt is due at next_attempt_at
    DELIVERED = "delivered"
    PARKED = "parked"  # failed every attempt; sent again only when redelivered


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant_id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    created_at: datetime
    secret: str  # never leaves the service except in the answer that created it


@dataclass(frozen=True)
class Message:
    """One event as webhooks send it: `id` is the `webhook-id`, `body` the exact bytes signed."""

    id: str
    tenant_id: str
    type: str
    body: bytes
    customer_id: str | None = None  # whose data the body holds (score.changed): for erasure


@dataclass(frozen=True)
class Delivery:
    id: str
    subscription_id: str
    message_id: str
    type: str
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class DueDelivery:
    """What an attempt needs: the delivery, where to and with which secret, and the message."""

    id: str
    subscription_id: str
    tenant_id: str
    url: str
    secret: str
    message_id: str
    type: str
    body: bytes
    attempts: int
    budget: int  # parks once attempts reach this


_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    description TEXT,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_tenant ON subscriptions (tenant_id, created_at);
CREATE TABLE IF NOT EXISTS messages (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    customer_id TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS messages_of_customer ON messages (tenant_id, customer_id)
    WHERE customer_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    budget INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    last_attempt_at REAL,
    next_attempt_at REAL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_log ON deliveries (subscription_id, created_at, id);
"""

_OPEN = (DeliveryState.PENDING.value, DeliveryState.RETRYING.value)


def delivery_id(subscription_id: str, message_id: str) -> str:
    """Deterministic: the same event read again maps to the same delivery (recorded once)."""
    digest = hashlib.sha256(f"{subscription_id}\x1f{message_id}".encode()).hexdigest()
    return f"dlv_{digest[:24]}"


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class WebhookStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit; transactions are explicit. One connection, guarded: worker threads share it.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: an attempt's outcome lost to a power cut means the attempt is made again
        # (at-least-once). What offsets are committed after is written FULL (`record`).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        path.chmod(0o600)  # it holds the signing secrets
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- subscriptions -------------------------------------------------------------------

    def subscribe(
        self,
        tenant_id: str,
        url: str,
        event_types: Sequence[str],
        description: str | None,
        secret: str,
    ) -> Subscription:
        subscription = Subscription(
            id=f"wh_{secrets.token_hex(12)}",
            tenant_id=tenant_id,
            url=url,
            event_types=tuple(event_types),
            description=description,
            created_at=datetime.now(UTC),
            secret=secret,
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    subscription.id,
                    tenant_id,
                    url,
                    json.dumps(list(event_types)),
                    description,
                    secret,
                    subscription.created_at.timestamp(),
                ),
            )
        return subscription

    def subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        """A tenant's subscriptions (every tenant's with None), oldest first."""
        query = "SELECT * FROM subscriptions"
        args: tuple[Any, ...] = ()
        if tenant_id is not None:
            query, args = query + " WHERE tenant_id = ?", (tenant_id,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", args).fetchall()
        return [_subscription(row) for row in rows]

    def subscription(self, tenant_id: str, subscription_id: str) -> Subscription | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM subscriptions WHERE id = ? AND tenant_id = ?",
                (subscription_id, tenant_id),
            ).fetchone()
        return None if row is None else _subscription(row)

    def count(self, tenant_id: str) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT count(*) FROM subscriptions WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
        return int(n)

    def unsubscribe(self, tenant_id: str, subscription_id: str) -> bool:
        """Remove a subscription and its delivery log; False if the tenant has no such one."""
        with self._lock, self._transaction():
            removed = self._db.execute(
                "DELETE FROM subscriptions WHERE id = ? AND tenant_id = ?",
                (subscription_id, tenant_id),
            ).rowcount
            if removed:
                self._db.execute(
                    "DELETE FROM deliveries WHERE subscription_id = ?", (subscription_id,)
                )
        return bool(removed)

    # --- recording what to send ----------------------------------------------------------

    def record(self, work: Iterable[tuple[Message, Sequence[str]]], budget: int) -> int:
        """Each message with a delivery to each of its subscriptions, in one transaction;
        what was recorded before (the same event read again) stays as it is. The number of
        deliveries newly recorded."""
        now = time.time()
        added = 0
        with self._lock, self._durably(), self._transaction():
            for message, subscription_ids in work:
                if not subscription_ids:
                    continue
                self._db.execute(
                    "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        message.tenant_id,
                        message.id,
                        message.type,
                        message.body,
                        now,
                        message.customer_id,
                    ),
                )
                for subscription_id in subscription_ids:
                    added += self._db.execute(
                        "INSERT OR IGNORE INTO deliveries (id, subscription_id, tenant_id, "
                        "message_id, type, state, budget, created_at, next_attempt_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            delivery_id(subscription_id, message.id),
                            subscription_id,
                            message.tenant_id,
                            message.id,
                            message.type,
                            DeliveryState.PENDING.value,
                            budget,
                            now,
                            now,
                        ),
                    ).rowcount
        return added

    # --- delivering ----------------------------------------------------------------------

    def due(
        self, now: float, limit: int, per_subscription: int, skip: Iterable[str] = ()
    ) -> list[DueDelivery]:
        """Open deliveries whose next attempt is due, earliest first, except those in `skip`
        (attempts under way): at most `per_subscription` of each subscription's, so a subscriber
        with a long backlog cannot crowd the others out of the answer."""
        skip = set(skip)
        with self._lock:
            rows = self._db.execute(
                "SELECT d.id, d.subscription_id, d.tenant_id, s.url, s.secret, d.message_id, "
                "d.type, m.body, d.attempts, d.budget FROM ("
                "  SELECT *, row_number() OVER ("
                "    PARTITION BY subscription_id ORDER BY next_attempt_at, id) AS nth "
                "  FROM deliveries WHERE state IN (?, ?) AND next_attempt_at <= ?"
                ") d "
                "JOIN subscriptions s ON s.id = d.subscription_id "
                "JOIN messages m ON m.tenant_id = d.tenant_id AND m.id = d.message_id "
                # In-flight ones are still open: room for them and per_subscription more.
                "WHERE d.nth <= ? ORDER BY d.next_attempt_at LIMIT ?",
                (*_OPEN, now, 2 * per_subscription, limit + len(skip)),
            ).fetchall()
        return [DueDelivery(*row) for row in rows if row[0] not in skip][:limit]

    def attempted(
        self,
        delivery: DueDelivery,
        at: float,
        status: int | None,
        error: str | None,
        next_attempt_at: float | None,
    ) -> DeliveryState:
        """Record one attempt: delivered when `error` is None, else retrying until
        `next_attempt_at` or, with None, parked. The state it is in now."""
        if error is None:
            state = DeliveryState.DELIVERED
        elif next_attempt_at is None:
            state = DeliveryState.PARKED
        else:
            state = DeliveryState.RETRYING
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_status = ?, "
                "last_error = ?, last_attempt_at = ?, next_attempt_at = ?, "
                "delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END WHERE id = ?",
                (
                    state.value,
                    status,
                    error,
                    at,
                    next_attempt_at,
                    state is DeliveryState.DELIVERED,
                    at,
                    delivery.id,
                ),
            )
        return state

    def redeliver(
        self, tenant_id: str, subscription_id: str, delivery_id_: str, budget: int
    ) -> tuple[Delivery, bool] | None:
        """A parked delivery back in line, due now, with `budget` more attempts, and True; a
        delivery in another state unchanged, and False; None if the tenant has no such one."""
        with self._lock, self._transaction():
            changed = self._db.execute(
                "UPDATE deliveries SET state = ?, next_attempt_at = ?, budget = attempts + ? "
                "WHERE id = ? AND subscription_id = ? AND tenant_id = ? AND state = ?",
                (
                    DeliveryState.PENDING.value,
                    time.time(),
                    budget,
                    delivery_id_,
                    subscription_id,
                    tenant_id,
                    DeliveryState.PARKED.value,
                ),
            ).rowcount
            row = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries "
                "WHERE id = ? AND subscription_id = ? AND tenant_id = ?",
                (delivery_id_, subscription_id, tenant_id),
            ).fetchone()
        return None if row is None else (_delivery(row), bool(changed))

    def deliveries(
        self,
        subscription_id: str,
        limit: int,
        after: tuple[int, str] | None = None,
        state: DeliveryState | None = None,
    ) -> list[tuple[tuple[int, str], Delivery]]:
        """A subscription's delivery log, newest first, from after the keyset cursor `after`
        (created_at in microseconds, id); each with its own cursor key."""
        where, args = "subscription_id = ?", [subscription_id]
        if state is not None:
            where, args = where + " AND state = ?", [*args, state.value]
        if after is not None:
            where += " AND (CAST(created_at * 1000000 AS INTEGER), id) < (?, ?)"
            args += [after[0], after[1]]
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS}, CAST(created_at * 1000000 AS INTEGER) "
                f"FROM deliveries WHERE {where} "
                "ORDER BY CAST(created_at * 1000000 AS INTEGER) DESC, id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [((row[-1], row[0]), _delivery(row[:-1])) for row in rows]

    def erase_customer(self, tenant_id: str, customer_id: str) -> dict[str, int]:
        """Forget the messages about a customer and their deliveries, sent or not (an erased
        customer's scores are not announced any more)."""
        with self._lock, self._durably(), self._transaction():
            ids = [
                row[0]
                for row in self._db.execute(
                    "SELECT id FROM messages WHERE tenant_id = ? AND customer_id = ?",
                    (tenant_id, customer_id),
                )
            ]
            deliveries = 0
            for message_id in ids:
                deliveries += self._db.execute(
                    "DELETE FROM deliveries WHERE tenant_id = ? AND message_id = ?",
                    (tenant_id, message_id),
                ).rowcount
            self._db.execute(
                "DELETE FROM messages WHERE tenant_id = ? AND customer_id = ?",
                (tenant_id, customer_id),
            )
        return {"messages": len(ids), "deliveries": deliveries}

    def counts(self) -> dict[str, int]:
        """Deliveries per state (for the gauges)."""
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM deliveries GROUP BY state")
            found = dict(rows.fetchall())
        return {state.value: int(found.get(state.value, 0)) for state in DeliveryState}

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    @contextlib.contextmanager
    def _durably(self) -> Iterator[None]:
        """Commits inside are on disk when they return (the WAL is synced), whatever a power
        cut does next: the dispatcher commits offsets right after."""
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")


_DELIVERY_COLUMNS = (
    "id, subscription_id, message_id, type, state, attempts, last_status, last_error, "
    "created_at, last_attempt_at, next_attempt_at, delivered_at"
)


def _delivery(row: Sequence[Any]) -> Delivery:
    state = DeliveryState(row[4])
    open_ = state in (DeliveryState.PENDING, DeliveryState.RETRYING)
    return Delivery(
        id=row[0],
        subscription_id=row[1],
        message_id=row[2],
        type=row[3],
        state=state,
        attempts=row[5],
        last_status=row[6],
        last_error=row[7],
        created_at=_at(row[8]),  # type: ignore[arg-type]
        last_attempt_at=_at(row[9]),
        next_attempt_at=_at(row[10]) if open_ else None,
        delivered_at=_at(row[11]),
    )


def _subscription(row: Sequence[Any]) -> Subscription:
    return Subscription(
        id=row[0],
        tenant_id=row[1],
        url=row[2],
        event_types=tuple(json.loads(row[3])),
        description=row[4],
        secret=row[5],
        created_at=_at(row[6]),  # type: ignore[arg-type]
    )
