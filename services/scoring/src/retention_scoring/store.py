"""Materialized features: every customer's latest vector, per tenant, in columns.

A tenant's table keeps one row per customer in numpy arrays (the feature matrix in
`FEATURE_NAMES` order, `as_of`, when it was computed, its partition) plus a dict customer → row,
so a lookup is O(1) and a whole-tenant frame is one copy. Each row's compact history (the orders
`recompute_clock_features` needs to move the clock features to a later clock) lives in flat
arrays; a row points at its segment, and a replaced segment is only marked dead (owner −1) and
swept when dead entries outnumber live ones, so an update is an append.

No I/O, and no locking: the service mutates and snapshots tables on its event loop only, and
hands snapshots (copies) to worker threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from retention_shared.events import CustomerFeatures, OrderKind
from retention_shared.features import FEATURE_NAMES, HISTORY_COLUMNS, ORDER_SCHEMA

__all__ = ["FeatureStore", "TenantTable", "from_microseconds", "to_microseconds"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PURCHASE = OrderKind.PURCHASE.value
_CANCELLATION = OrderKind.CANCELLATION.value
_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def to_microseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_microseconds(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def _grow(array: np.ndarray, size: int) -> np.ndarray:
    if size <= len(array):
        return array
    grown = np.zeros((max(size, 2 * len(array), 64), *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


@dataclass
class _History:
    """Flat arrays of every row's compact history; `owner` is the row, or −1 when replaced."""

    owner: np.ndarray
    at_us: np.ndarray
    purchase: np.ndarray
    total: np.ndarray
    size: int = 0
    dead: int = 0

    @classmethod
    def empty(cls) -> _History:
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.bool_),
            np.zeros(0, np.float64),
        )

    def append(self, row: int, at_us: list[int], purchase: list[bool], total: list[float]) -> int:
        start, end = self.size, self.size + len(at_us)
        self.owner = _grow(self.owner, end)
        self.at_us = _grow(self.at_us, end)
        self.purchase = _grow(self.purchase, end)
        self.total = _grow(self.total, end)
        self.owner[start:end] = row
        self.at_us[start:end] = at_us
        self.purchase[start:end] = purchase
        self.total[start:end] = total
        self.size = end
        return start


class TenantTable:
    """One tenant's customers: feature rows, their clocks and their compact histories."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self.values = np.zeros((0, len(FEATURE_NAMES)), np.float64)
        self.as_of_us = np.zeros(0, np.int64)
        self.computed_us = np.zeros(0, np.int64)
        self.partition = np.zeros(0, np.int32)
        self.history_start = np.zeros(0, np.int64)
        self.history_length = np.zeros(0, np.int64)
        self._history = _History.empty()
        # Bumped on every change: with the model version and the clock it keys cached scores.
        self.generation = 0
        # The generation at which each row last changed (a cached population re-scores only the
        # rows changed since its own), and the last removal's (rows moved: score everyone).
        self.row_generation = np.zeros(0, np.int64)
        self.removed_generation = 0
        # time.monotonic() of the last vector: the tenant's clock settles once it is quiet.
        self.changed_at = 0.0
        # The tenant clock: the latest `as_of` of any of its vectors.
        self.clock_us = 0

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, customer_id: str) -> int | None:
        return self.index.get(customer_id)

    def upsert(self, event: CustomerFeatures, partition: int) -> int:
        """Put a customer's latest vector in its row (a new row for a new customer)."""
        row = self.index.get(event.customer_id)
        if row is None:
            row = len(self.ids)
            self.index[event.customer_id] = row
            self.ids.append(event.customer_id)
            size = row + 1
            self.values = _grow(self.values, size)
            self.as_of_us = _grow(self.as_of_us, size)
            self.computed_us = _grow(self.computed_us, size)
            self.partition = _grow(self.partition, size)
            self.history_start = _grow(self.history_start, size)
            self.history_length = _grow(self.history_length, size)
            self.row_generation = _grow(self.row_generation, size)
        else:
            self._drop_history(row)
        vector = self.values[row]
        vector[:] = 0.0
        for name, value in event.features.items():
            column = _FEATURE_INDEX.get(name)
            if column is not None:  # a feature this build does not know: ignored
                vector[column] = value
        as_of = to_microseconds(event.as_of)
        self.as_of_us[row] = as_of
        self.computed_us[row] = to_microseconds(event.computed_at)
        self.partition[row] = partition
        orders = event.history.orders
        self.history_start[row] = self._history.append(
            row,
            [to_microseconds(o.occurred_at) for o in orders],
            [o.kind.value == _PURCHASE for o in orders],
            [o.total for o in orders],
        )
        self.history_length[row] = len(orders)
        self.clock_us = max(self.clock_us, as_of)
        self.generation += 1
        self.row_generation[row] = self.generation
        self.changed_at = time.monotonic()
        return row

    def _drop_history(self, row: int) -> None:
        start, length = self.history_start[row], self.history_length[row]
        self._history.owner[start : start + length] = -1
        self._history.dead += int(length)
        if self._history.dead > max(1024, self._history.size - self._history.dead):
            self._compact()

    def _compact(self) -> None:
        old = self._history
        live = old.owner[: old.size] >= 0
        # Stable order keeps each row's entries contiguous and in their original order.
        order = np.argsort(old.owner[: old.size][live], kind="stable")
        owner = old.owner[: old.size][live][order]
        self._history = _History(
            owner,
            old.at_us[: old.size][live][order],
            old.purchase[: old.size][live][order],
            old.total[: old.size][live][order],
            size=len(owner),
        )
        starts = np.searchsorted(owner, np.arange(len(self.ids)), side="left")
        self.history_start[: len(self.ids)] = starts

    def remove(self, customer_id: str) -> bool:
        """Forget a customer (an erasure): the last row moves into its place. False if unknown."""
        row = self.index.pop(customer_id, None)
        if row is None:
            return False
        self._drop_history(row)
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.ids[row] = moved
            self.index[moved] = row
            for column in (
                self.values,
                self.as_of_us,
                self.computed_us,
                self.partition,
                self.history_start,
                self.history_length,
                self.row_generation,
            ):
                column[row] = column[last]
            start, length = self.history_start[row], self.history_length[row]
            self._history.owner[start : start + length] = row
        self.ids.pop()
        self.values[last] = 0.0  # no copy of the features stays behind
        self.generation += 1
        self.removed_generation = self.generation
        return True

    def changed_since(self, generation: int) -> np.ndarray:
        """Rows whose vector changed after `generation` (new rows included), in row order."""
        return np.flatnonzero(self.row_generation[: len(self.ids)] > generation)

    # --- snapshots (copies, safe to hand to a worker thread) ------------------------------------

    def rows_of(self, customer_ids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.index[c] for c in customer_ids if c in self.index), dtype=np.int64)

    def features_frame(self, rows: np.ndarray | None = None) -> pl.DataFrame:
        """`tenant_id, customer_id, as_of` and `FEATURE_NAMES`, as the features service sent them."""
        rows = np.arange(len(self.ids)) if rows is None else np.asarray(rows, dtype=np.int64)
        ids = [self.ids[r] for r in rows.tolist()]
        values = self.values[rows]
        return pl.DataFrame(
            {
                "tenant_id": pl.Series([self.tenant_id] * len(ids), dtype=pl.String),
                "customer_id": pl.Series(ids, dtype=pl.String),
                "as_of": pl.Series(self.as_of_us[rows], dtype=pl.Int64).cast(
                    pl.Datetime("us", "UTC")
                ),
                **{
                    name: pl.Series(values[:, i], dtype=pl.Float64)
                    for i, name in enumerate(FEATURE_NAMES)
                },
            }
        )

    def history_frame(self, rows: np.ndarray | None = None) -> pl.DataFrame:
        """The compact histories of `rows` (all rows by default), columns `HISTORY_COLUMNS`."""
        h = self._history
        if rows is None:
            keep = np.flatnonzero(h.owner[: h.size] >= 0)
        else:
            rows = np.asarray(rows, dtype=np.int64)
            lengths = self.history_length[rows]
            starts = self.history_start[rows]
            # Concatenated ranges [start, start + length) without a Python loop.
            offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
            keep = offsets + np.arange(int(lengths.sum()))
        owners = h.owner[keep]
        if rows is None:
            ids = np.asarray(self.ids, dtype=object)[owners] if len(keep) else []
        else:  # a patch's few rows: not the whole id list as an array
            ids = [self.ids[o] for o in owners.tolist()]
        return pl.DataFrame(
            {
                "tenant_id": pl.Series([self.tenant_id] * len(keep), dtype=pl.String),
                "customer_id": pl.Series(list(ids), dtype=pl.String),
                "occurred_at": pl.Series(h.at_us[keep], dtype=pl.Int64).cast(
                    pl.Datetime("us", "UTC")
                ),
                "kind": pl.Series(
                    np.where(h.purchase[keep], _PURCHASE, _CANCELLATION).tolist(),
                    dtype=pl.String,
                ),
                "total": pl.Series(h.total[keep], dtype=pl.Float64),
            },
            schema={c: ORDER_SCHEMA[c] for c in HISTORY_COLUMNS},
        )


class FeatureStore:
    """Every tenant's table; a tenant appears with its first vector."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantTable] = {}

    def table(self, tenant_id: str) -> TenantTable | None:
        return self.tenants.get(tenant_id)

    def apply(self, events: Iterable[tuple[CustomerFeatures, int]]) -> dict[str, set[str]]:
        """Upsert `(vector, partition)` pairs in log order; returns the customers touched per tenant."""
        touched: dict[str, set[str]] = {}
        for event, partition in events:
            table = self.tenants.get(event.tenant_id)
            if table is None:
                table = self.tenants[event.tenant_id] = TenantTable(event.tenant_id)
            table.upsert(event, partition)
            touched.setdefault(event.tenant_id, set()).add(event.customer_id)
        return touched

    def remove(self, tenant_id: str, customer_id: str) -> bool:
        """Forget a customer of a tenant; False if it held no such customer."""
        table = self.tenants.get(tenant_id)
        return table is not None and table.remove(customer_id)

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget every customer whose vector came from one of `partitions` (a sharded replica
        letting a partition go to its new owner); returns how many."""
        dropped = 0
        for table in self.tenants.values():
            rows = np.flatnonzero(np.isin(table.partition[: len(table)], list(partitions)))
            for customer_id in [table.ids[row] for row in rows]:
                dropped += table.remove(customer_id)
        return dropped

    def customers(self) -> int:
        return sum(len(table) for table in self.tenants.values())
