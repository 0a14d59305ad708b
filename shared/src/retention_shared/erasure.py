"""Customer erasure as every service takes part in it (docs/operations.md, "Erasing a customer").

Scoring's `DELETE /v1/customers/{id}` publishes `CustomerErasureRequested` on
`customer-erasures`. Each service subscribes with `subscribe_erasures`: its handler removes what
the service holds of the customer and returns what it removed; the subscription then confirms
with `CustomerErased` on `erasure-audit` (who asked, when, which tenant, which service — never
the customer's id). A handler that keeps failing sends the request to the dead-letter path like
any other record (`retention_shared.kafka.subscribers`).

Services that replay `transactions` (features, the trainer's lake) keep an `ErasureList`, so a
replay does not bring an erased customer back: it holds no id, only a salted SHA-256 of
`tenant \\x1f customer` (the salt is random, per data directory, stored beside it) and the
erasure's time. Orders dated up to that time stay erased even when upstream sends them again;
a later order is a new history. The digest keeps ids out of the file, not out of reach: with the
salt, ids of a small space can be found by trying them all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaMessage

from retention_shared.events import (
    CustomerErased,
    CustomerErasureRequested,
    EventDecodeError,
    decode_event,
)
from retention_shared.kafka.dead_letters import DeadLetters, TransientFailure
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.kafka.subscribers import record_of, subscriber
from retention_shared.service import ServiceContext

__all__ = [
    "ErasureHandler",
    "ErasureList",
    "instance_name",
    "subscribe_erasures",
    "to_microseconds",
]

log = logging.getLogger(__name__)

ErasureHandler = Callable[[CustomerErasureRequested], Awaitable[dict[str, int]]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS salt (id INTEGER PRIMARY KEY CHECK (id = 0), value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS erased (
    digest BLOB PRIMARY KEY,
    erased_until_us INTEGER NOT NULL
) WITHOUT ROWID;
"""


def to_microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class ErasureList:
    """The customers one service instance erased, by salted digest, with the erasure's time.

    Read from the consumer's worker threads and written from its event loop: lookups use an
    in-memory copy, writes go to SQLite first (under a lock), so the list survives a restart.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM salt WHERE id = 0").fetchone()
        if row is None:
            self._db.execute("INSERT INTO salt VALUES (0, ?)", (os.urandom(32),))
            row = self._db.execute("SELECT value FROM salt WHERE id = 0").fetchone()
        self._salt: bytes = row[0]
        self._until: dict[bytes, int] = dict(
            self._db.execute("SELECT digest, erased_until_us FROM erased")
        )

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return len(self._until)

    def digest(self, tenant_id: str, customer_id: str) -> bytes:
        return hashlib.sha256(self._salt + f"{tenant_id}\x1f{customer_id}".encode()).digest()

    def add(self, tenant_id: str, customer_id: str, until: datetime) -> None:
        """Remember that the customer's orders dated up to `until` are erased (the later of two
        erasures of the same customer wins)."""
        digest, until_us = self.digest(tenant_id, customer_id), to_microseconds(until)
        with self._lock:
            self._db.execute(
                "INSERT INTO erased VALUES (?, ?) ON CONFLICT (digest) DO UPDATE SET "
                "erased_until_us = max(erased_until_us, excluded.erased_until_us)",
                (digest, until_us),
            )
            self._until[digest] = max(self._until.get(digest, until_us), until_us)

    def erased_until_us(self, tenant_id: str, customer_id: str) -> int | None:
        """Until when (µs) the customer's orders are erased, or None."""
        if not self._until:
            return None
        return self._until.get(self.digest(tenant_id, customer_id))

    def covers(self, tenant_id: str, customer_id: str, occurred_at_us: int) -> bool:
        """Whether an order of the customer dated `occurred_at_us` was erased."""
        until = self.erased_until_us(tenant_id, customer_id)
        return until is not None and occurred_at_us <= until

    def listed(self, customers: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Those of `customers` on the list, each with until when they are erased (µs)."""
        if not self._until:
            return {}
        found = {}
        for tenant_id, customer_id in customers:
            until = self._until.get(self.digest(tenant_id, customer_id))
            if until is not None:
                found[(tenant_id, customer_id)] = until
        return found


def instance_name(state_dir: Path) -> str:
    """This instance's stable name: a random id kept in `state_dir` (one per data directory, so
    one per StatefulSet pod or volume), with the host name for people reading the audit."""
    path = state_dir / "instance-id"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(uuid.uuid4().hex[:12])
    return f"{socket.gethostname()}-{path.read_text().strip()}"


def subscribe_erasures(
    ctx: ServiceContext, group_id: str, instance: str, handler: ErasureHandler
) -> None:
    """Call `handler` for every `CustomerErasureRequested` (group `group_id`), then confirm it
    on `erasure-audit`. A request the handler keeps failing on is dead-lettered."""
    dead_letters = DeadLetters(ctx)
    audit = TopicPublisher(ctx, "erasure-audit")

    @subscriber(ctx, "customer-erasures", group_id=group_id)
    async def on_erasure(body: bytes, message: KafkaMessage) -> None:
        try:
            request: CustomerErasureRequested = decode_event(CustomerErasureRequested, body)
        except EventDecodeError as error:
            await dead_letters.reject(record_of(message), [error.as_reason()])
            return
        try:
            removed = await handler(request)
            confirmation = CustomerErased(
                erasure_id=request.erasure_id,
                tenant_id=request.tenant_id,
                service=ctx.name,
                instance=instance,
                requested_at=request.requested_at,
                requested_by=request.requested_by,
                removed=removed,
            )
            await audit.publish(confirmation, key=request.tenant_id.encode())
        except (KafkaError, TimeoutError) as error:
            # The broker failed, not the request: erase again later (erasing is idempotent).
            raise TransientFailure(f"{type(error).__name__}: {error}") from error
        # The audit line names the erasure, never the customer.
        log.info(
            "customer erased",
            extra={
                "erasure_id": request.erasure_id,
                "tenant_id": request.tenant_id,
                "requested_by": request.requested_by,
                "removed": removed,
            },
        )
        ctx.counts.consumed(record_of(message).topic, ok=1)
