"""One SQLite file per `transactions` partition: its customers' order history and its next offset.

A consumed batch is written in one transaction together with the partition's next offset and
tenant clocks, so a crash at any instant leaves either the whole batch or none of it. Orders are
deduplicated by (tenant_id, order_id, kind): a redelivered or replayed event changes nothing. An
amendment (a higher `version` of the order) replaces the stored row, and a withdrawal removes it
from the customer it named (`amend`); a lower or equal version changes nothing, so the result
does not depend on the order in which versions arrive.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import polars as pl

from retention_shared.events import OrderEvent
from retention_shared.features.running import RunningOrder

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    tenant_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at_us INTEGER NOT NULL,
    total REAL NOT NULL,
    items REAL NOT NULL,
    products TEXT NOT NULL,
    source_offset INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    lines INTEGER,
    currency TEXT,
    PRIMARY KEY (tenant_id, order_id, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (tenant_id, customer_id);
CREATE TABLE IF NOT EXISTS tenant_clock (
    tenant_id TEXT PRIMARY KEY,
    latest_event_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    next_offset INTEGER NOT NULL
);
"""
# Columns named, not positional: a state file from an earlier release got the later ones by
# ALTER TABLE (`_ADDED_COLUMNS`).
_COLUMNS = (
    "tenant_id, customer_id, order_id, kind, occurred_at_us, total, items, products, "
    "source_offset, version, lines, currency"
)
_INSERT = f"INSERT OR IGNORE INTO orders ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"
_REPLACE = f"INSERT OR REPLACE INTO orders ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"
_ADDED_COLUMNS = {
    "version": "version INTEGER NOT NULL DEFAULT 0",
    "lines": "lines INTEGER",  # null: stored before line counts were kept
    "currency": "currency TEXT",
}
_STORED_VERSION = (
    "SELECT customer_id, version FROM orders WHERE tenant_id = ? AND order_id = ? AND kind = ?"
)
_STORED_FROM = "SELECT source_offset FROM orders WHERE tenant_id = ? AND order_id = ? AND kind = ?"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_microseconds(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (float timestamps would round)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class StoredOrder:
    """An order as the store keeps it, with the Kafka offset it came from."""

    event: OrderEvent
    offset: int

    def row(self) -> tuple[object, ...]:
        event = self.event
        return (
            event.tenant_id,
            event.customer_id,
            event.order_id,
            event.kind.value,
            to_microseconds(event.occurred_at),
            event.total,
            sum(abs(line.quantity) for line in event.lines),
            json.dumps(sorted({line.product_id for line in event.lines})),
            self.offset,
            event.version,
            len(event.lines),
            event.currency,
        )


class OrderRow(NamedTuple):
    """One stored order as the order-history API reads it."""

    occurred_at_us: int
    order_id: str
    kind: str
    total: float
    lines: int | None  # None: stored before line counts were kept
    currency: str | None


class PartitionStore:
    """The durable state of one partition; only the consumer task that owns it writes to it."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self._clocks: dict[str, int] | None = None
        self._pending_clocks: dict[str, int] | None = None
        if readonly:  # a reader beside the consumer's writer (WAL lets both go on)
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # The consumer writes from a worker thread, one batch at a time (under its lock).
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL + NORMAL: a killed process loses nothing committed; only power loss could.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(orders)")}
        for name, definition in _ADDED_COLUMNS.items():  # a state file from an earlier release
            if name not in columns:
                self._db.execute(f"ALTER TABLE orders ADD COLUMN {definition}")

    def close(self) -> None:
        self._db.close()

    def next_offset(self) -> int | None:
        row = self._db.execute("SELECT next_offset FROM progress WHERE id = 0").fetchone()
        return None if row is None else int(row[0])

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self, next_offset: int) -> None:
        self._db.execute(
            "INSERT INTO progress (id, next_offset) VALUES (0, ?) "
            "ON CONFLICT (id) DO UPDATE SET next_offset = excluded.next_offset",
            (next_offset,),
        )
        self._db.execute("COMMIT")
        if self._pending_clocks is not None and self._clocks is not None:
            for tenant, clock in self._pending_clocks.items():
                self._clocks[tenant] = max(self._clocks.get(tenant, clock), clock)
        self._pending_clocks = None

    def rollback(self) -> None:
        self._pending_clocks = None
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def add_orders(self, orders: Iterable[StoredOrder]) -> None:
        self.insert_rows([order.row() for order in orders])

    def insert_rows(self, rows: Sequence[tuple[object, ...]]) -> list[bool]:
        """Insert `orders` rows (inside the open transaction); True for each one that was new.

        One `executemany`; only if some rows were ignored (a duplicate event, a batch re-read
        after a crash) is each one looked up: it is new if the stored copy has its own source
        offset (an offset is one record, applied once).
        """
        before = self._db.total_changes
        self._db.executemany(_INSERT, rows)
        if self._db.total_changes - before == len(rows):
            return [True] * len(rows)
        return [
            self._db.execute(_STORED_FROM, (row[0], row[2], row[3])).fetchone()[0] == row[8]
            for row in rows
        ]

    def amend(self, row: tuple[object, ...], withdrawn: bool) -> list[tuple[str, str]]:
        """Apply an amendment `row` (inside the open transaction): replace the stored order if
        its version is higher, or, for a withdrawal, delete it from the customer it names.
        Returns the customers whose orders changed (one or two), for their totals to reload."""
        tenant, customer, order_id, kind, version = row[0], row[1], row[2], row[3], row[9]
        stored = self._db.execute(_STORED_VERSION, (tenant, order_id, kind)).fetchone()
        if withdrawn:
            if stored is None or stored[0] != customer or stored[1] >= version:
                return []
            self._db.execute(
                "DELETE FROM orders WHERE tenant_id = ? AND order_id = ? AND kind = ?",
                (tenant, order_id, kind),
            )
            return [(str(tenant), str(customer))]
        if stored is not None and stored[1] >= version:
            return []
        self._db.execute(_REPLACE, row)
        touched = [(str(tenant), str(customer))]
        if stored is not None and stored[0] != customer:
            touched.append((str(tenant), stored[0]))
        return touched

    def tenant_clocks(self) -> dict[str, int]:
        """The committed tenant clocks (a copy; read once, then kept as they are committed)."""
        if self._clocks is None:
            self._clocks = dict(
                self._db.execute("SELECT tenant_id, latest_event_us FROM tenant_clock")
            )
        return dict(self._clocks)

    def save_tenant_clocks(self, clocks: dict[str, int]) -> None:
        """Write the clocks in the open transaction (they count once it is committed)."""
        self._db.executemany(
            "INSERT INTO tenant_clock VALUES (?, ?) ON CONFLICT (tenant_id) "
            "DO UPDATE SET latest_event_us = max(latest_event_us, excluded.latest_event_us)",
            list(clocks.items()),
        )
        self._pending_clocks = clocks

    def history(self, customers: Iterable[tuple[str, str]]) -> pl.DataFrame:
        """The stored orders of the given (tenant, customer) pairs, as the feature input frame."""
        return orders_frame(self._rows(customers))

    def _rows(self, customers: Iterable[tuple[str, str]]) -> list[tuple[object, ...]]:
        keys = list(customers)
        self._db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS wanted (tenant_id TEXT, customer_id TEXT)"
        )
        self._db.execute("DELETE FROM wanted")
        self._db.executemany("INSERT INTO wanted VALUES (?, ?)", keys)
        return self._db.execute(
            "SELECT o.tenant_id, o.customer_id, o.order_id, o.kind, o.occurred_at_us, o.total, "
            "o.items, o.products FROM wanted w CROSS JOIN orders o INDEXED BY orders_by_customer "
            # CROSS JOIN keeps `wanted` outside: one index probe per customer, not a table walk.
            "WHERE o.tenant_id = w.tenant_id AND o.customer_id = w.customer_id "
            "ORDER BY o.tenant_id, o.customer_id, o.occurred_at_us, o.order_id, o.kind"
        ).fetchall()

    def history_orders(
        self, customers: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[RunningOrder]]:
        """The stored orders of the given (tenant, customer) pairs, for `RunningCustomer`."""
        found: dict[tuple[str, str], list[RunningOrder]] = {key: [] for key in customers}
        for tenant, customer, order_id, kind, at, total, items, products in self._rows(found):
            found[(tenant, customer)].append(
                RunningOrder(at, kind, order_id, total, items, json.loads(products))
            )
        return found

    def has_customer(self, tenant_id: str, customer_id: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM orders WHERE tenant_id = ? AND customer_id = ? LIMIT 1",
                (tenant_id, customer_id),
            ).fetchone()
            is not None
        )

    def order_page(
        self,
        tenant_id: str,
        customer_id: str,
        limit: int,
        after: tuple[int, str, str] | None = None,
    ) -> list[OrderRow]:
        """Up to `limit` of the customer's orders, newest first — by (time, order id, kind),
        which is unique — starting strictly after the key `after` of the previous page's last."""
        where = "tenant_id = ? AND customer_id = ?"
        values: list[object] = [tenant_id, customer_id]
        if after is not None:
            where += " AND (occurred_at_us, order_id, kind) < (?, ?, ?)"
            values += after
        rows = self._db.execute(
            "SELECT occurred_at_us, order_id, kind, total, lines, currency FROM orders "
            f"WHERE {where} ORDER BY occurred_at_us DESC, order_id DESC, kind DESC LIMIT ?",
            (*values, limit),
        )
        return [OrderRow(*row) for row in rows]

    def last_mark(self) -> tuple[int, str, str, str] | None:
        """(source offset, tenant, order id, kind) of the order stored from the latest offset."""
        row = self._db.execute(
            "SELECT source_offset, tenant_id, order_id, kind FROM orders "
            "ORDER BY source_offset DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), row[1], row[2], row[3])

    def customer_sources(self) -> dict[tuple[str, str], int]:
        """Each stored customer's latest source offset."""
        rows = self._db.execute(
            "SELECT tenant_id, customer_id, max(source_offset) FROM orders GROUP BY 1, 2"
        )
        return {(tenant, customer): int(offset) for tenant, customer, offset in rows}

    def customers(self) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM (SELECT DISTINCT tenant_id, customer_id FROM orders)"
            ).fetchone()[0]
        )

    def all_history(self) -> pl.DataFrame:
        rows = self._db.execute(
            "SELECT tenant_id, customer_id, order_id, kind, occurred_at_us, total, items, products "
            "FROM orders ORDER BY tenant_id, customer_id, occurred_at_us, order_id, kind"
        ).fetchall()
        return orders_frame(rows)

    def erase_customers(self, customers: dict[tuple[str, str], int | None]) -> int:
        """Delete the orders of each (tenant, customer), all of them or those dated up to the
        given µs, and make the file forget their bytes: `secure_delete` zeroes freed space,
        VACUUM rewrites the file without stale copies (page splits leave some), and a TRUNCATE
        checkpoint empties the WAL that held the old pages. Outside any open transaction (the
        consumer holds its lock); returns the orders deleted."""
        self._db.execute("PRAGMA secure_delete=ON")
        deleted = 0
        for (tenant_id, customer_id), until_us in customers.items():
            deleted += self._db.execute(
                "DELETE FROM orders WHERE tenant_id = ? AND customer_id = ? "
                "AND (? IS NULL OR occurred_at_us <= ?)",
                (tenant_id, customer_id, until_us, until_us),
            ).rowcount
        if deleted:
            self._db.execute("VACUUM")
        # Always, so a retry after a busy checkpoint still empties the WAL.
        self._db.execute("PRAGMA busy_timeout=5000")  # readers of the API end their reads
        for _ in range(20):
            if not self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                return deleted
            time.sleep(0.1)
        raise OSError(f"{self.path}: the WAL could not be emptied after an erasure")


def orders_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows,
        schema={
            "tenant_id": pl.String,
            "customer_id": pl.String,
            "order_id": pl.String,
            "kind": pl.String,
            "occurred_at": pl.Int64,
            "total": pl.Float64,
            "items": pl.Float64,
            "products": pl.String,
        },
        orient="row",
    )
    return frame.with_columns(
        pl.col("occurred_at").cast(pl.Datetime("us", "UTC")),
        pl.col("products").str.json_decode(pl.List(pl.String)),
    )
