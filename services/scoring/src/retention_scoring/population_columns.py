"""A scored population's columns kept in place: numpy arrays that a patch overwrites by row.

A patch of a few changed customers used to rebuild the population's polars frames (a gather of
every row: ~47 ms per batch at 95k customers, growing with the tenant). Here each column is one
numpy array with spare capacity (grown by a quarter when full): a patch writes its rows, appends new
customers, and records the values it overwrote (`Undo`), so a population read by someone while
a later patch lands can still be restored exactly (`PopulationColumns.restored`). Frames are
built from the arrays only when a reader needs a whole one.

Strings are stored as int32 codes into an append-only list of categories (a few distinct values
per column), except `customer_id`, kept as the id objects themselves. Nulls are a validity mask,
made only once a column has a null.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from retention_scoring.ltv_order import LtvOrder

__all__ = ["Column", "PopulationColumns", "Undo"]

IDS = "customer_id"


def _grow(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = (
        np.zeros(capacity, dtype=array.dtype)
        if array.dtype != object
        else np.empty(capacity, dtype=object)
    )
    grown[: len(array)] = array
    return grown


@dataclass
class Column:
    """One frame column: physical values (or string codes) and, once there is a null, validity."""

    name: str
    dtype: pl.DataType
    values: np.ndarray
    valid: np.ndarray | None = None
    categories: list[str] | None = None  # for coded strings
    codes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, name: str, dtype: pl.DataType) -> Column:
        if dtype == pl.String:
            if name == IDS:
                return cls(name, dtype, np.empty(0, dtype=object))
            return cls(name, dtype, np.zeros(0, dtype=np.int32), categories=[])
        physical = pl.Series([], dtype=dtype).to_physical().to_numpy()
        return cls(name, dtype, np.zeros(0, dtype=physical.dtype))

    def code(self, names: Sequence[str]) -> np.ndarray:
        """Codes of these strings, new ones added to the categories."""
        assert self.categories is not None
        for name in names:
            if name not in self.codes:
                self.codes[name] = len(self.categories)
                self.categories.append(name)
        return np.asarray([self.codes[n] for n in names], dtype=np.int32)

    def encode(self, series: pl.Series) -> tuple[np.ndarray, np.ndarray | None]:
        """Physical values of `series` and its validity (None: no null)."""
        valid = series.is_not_null().to_numpy() if series.null_count() else None
        if self.categories is not None:
            distinct = series.drop_nulls().unique().to_list()
            self.code(distinct)
            codes = series.replace_strict(
                list(self.codes), list(self.codes.values()), default=0, return_dtype=pl.Int32
            )
            return codes.fill_null(0).to_numpy(), valid
        if self.values.dtype == object:
            return np.asarray(series.to_list(), dtype=object), valid
        physical = series if series.dtype.is_numeric() else series.to_physical()
        return (physical.fill_null(0) if valid is not None else physical).to_numpy(), valid

    def resize(self, capacity: int) -> None:
        self.values = _grow(self.values, capacity)
        if self.valid is not None:
            self.valid = _grow(self.valid, capacity)

    def decode(self, values: np.ndarray, valid: np.ndarray | None) -> pl.Series:
        """A polars series of these (copied) physical values."""
        if self.categories is not None:
            series = pl.Series(self.name, self.categories, dtype=pl.String).gather(values)
        elif values.dtype == object:
            series = pl.Series(self.name, values, dtype=pl.String)
        else:
            series = pl.Series(self.name, values).cast(self.dtype)
        if valid is not None and not valid.all():
            series = pl.select(pl.when(pl.Series(valid)).then(series)).to_series()
        return series.alias(self.name)


@dataclass(frozen=True)
class Undo:
    """Values a write overwrote: column name → (positions, old values, old validity)."""

    entries: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]
    generation: int  # the columns' generation this write made


class PopulationColumns:
    """Every column of a population (features, then scores; shared names stored once), the
    features service's `computed_us`, the partitions, and each row's version (the generation
    that last wrote its features: an explanation computed at that version still holds).

    `lock` guards the arrays between the event loop, which writes patches, and worker threads
    that copy them; `generation` counts writes."""

    def __init__(
        self,
        features: pl.DataFrame,
        scores: pl.DataFrame,
        computed_us: np.ndarray,
        partitions: np.ndarray,
    ) -> None:
        self.lock = threading.Lock()
        self.generation = 0
        self.feature_names = features.columns
        self.score_names = scores.columns
        self.columns: dict[str, Column] = {}
        for frame in (features, scores):
            for name, dtype in frame.schema.items():
                if name not in self.columns:
                    self.columns[name] = Column.empty(name, dtype)
                assert self.columns[name].dtype == dtype, name
        self.length = 0
        self.capacity = 0
        self.computed_us = np.zeros(0, np.int64)
        self.partitions = np.zeros(0, partitions.dtype)
        self.row_version = np.zeros(0, np.int64)
        self.explanations: dict[str, tuple[int, object]] = {}
        self.order: LtvOrder | None = None  # the LTVs sorted, for patches (made on first use)
        # Customer id → position; append-only (a removal is a whole pass: new columns).
        self.index: dict[str, int] = {}
        self._append(features, scores, computed_us, partitions)

    def _ensure(self, size: int) -> None:
        if size <= self.capacity:
            return
        # Grown by a quarter: appends stay amortised O(1), and idle spare room stays small.
        capacity = max(size, self.capacity + self.capacity // 4, 1024)
        for column in self.columns.values():
            column.resize(capacity)
        self.computed_us = _grow(self.computed_us, capacity)
        self.partitions = _grow(self.partitions, capacity)
        self.row_version = _grow(self.row_version, capacity)
        self.capacity = capacity

    def _append(
        self,
        features: pl.DataFrame,
        scores: pl.DataFrame,
        computed_us: np.ndarray,
        partitions: np.ndarray,
    ) -> None:
        size = features.height
        self._ensure(size)
        at = np.arange(size)
        self._write_frame(at, features, self.feature_names, None)
        self._write_frame(at, scores, [n for n in self.score_names if n not in features], None)
        self.computed_us[:size] = computed_us[:size]
        self.partitions[:size] = partitions[:size]
        self.index = {c: i for i, c in enumerate(self.columns[IDS].values[:size].tolist())}
        self.length = size

    def _store(
        self,
        column: Column,
        at: np.ndarray,
        values: np.ndarray,
        valid: np.ndarray | None,
        undo: list | None,
    ) -> None:
        old = at[at < self.length]
        if undo is not None and len(old):
            old_valid = column.valid[old].copy() if column.valid is not None else None
            undo.append((column.name, old, column.values[old].copy(), old_valid))
        if valid is not None and column.valid is None:
            column.valid = np.ones(self.capacity, dtype=bool)
        column.values[at] = values
        if column.valid is not None:
            column.valid[at] = True if valid is None else valid

    def _write_frame(
        self, at: np.ndarray, frame: pl.DataFrame, names: Sequence[str], undo: list | None
    ) -> None:
        for name in names:
            column = self.columns[name]
            values, valid = column.encode(frame[name])
            self._store(column, at, values, valid, undo)

    def _store_array(self, name: str, at: np.ndarray, values: np.ndarray, undo: list) -> None:
        array = getattr(self, name)
        old = at[at < self.length]
        if len(old):
            undo.append((name, old, array[old].copy(), None))
        array[at] = values

    def write(
        self,
        rows: np.ndarray,
        features: pl.DataFrame,
        scores: pl.DataFrame,
        computed_us: np.ndarray,
        partitions: np.ndarray,
        size: int,
    ) -> Undo:
        """Overwrite `rows` (positions; those past the end are appended, up to `size`) with these
        frames' rows, in order; call with `lock` held. Returns what was overwritten."""
        assert features.height == scores.height == len(rows)
        self._ensure(size)
        undo: list = []
        self.generation += 1
        self._write_frame(rows, features, self.feature_names, undo)
        self._write_frame(
            rows, scores, [n for n in self.score_names if n not in self.feature_names], undo
        )
        self._store_array("computed_us", rows, computed_us[rows], undo)
        self._store_array("partitions", rows, partitions[rows], undo)
        self._store_array("row_version", rows, np.full(len(rows), self.generation), undo)
        appended = rows >= self.length
        ids = self.columns[IDS].values
        self.index.update(zip(ids[rows[appended]].tolist(), rows[appended].tolist(), strict=True))
        self.length = size
        return Undo(undo, self.generation)

    def write_codes(self, name: str, at: np.ndarray, codes: np.ndarray) -> Undo:
        """Set a coded string column to `codes` at positions `at`; call with `lock` held."""
        undo: list = []
        self.generation += 1
        self._store(self.columns[name], at, codes, None, undo)
        return Undo(undo, self.generation)

    def restored(self, length: int, undos: Sequence[Undo]) -> PopulationColumns:
        """A copy of the first `length` rows as they were before `undos` (oldest first) were
        written; call with `lock` held."""
        copy = object.__new__(PopulationColumns)
        copy.lock = threading.Lock()
        copy.generation = 0
        copy.feature_names, copy.score_names = self.feature_names, self.score_names
        copy.length = copy.capacity = length
        copy.columns = {}
        for name, column in self.columns.items():
            copy.columns[name] = Column(
                name,
                column.dtype,
                column.values[:length].copy(),
                None if column.valid is None else column.valid[:length].copy(),
                None if column.categories is None else list(column.categories),
                dict(column.codes),
            )
        copy.computed_us = self.computed_us[:length].copy()
        copy.partitions = self.partitions[:length].copy()
        copy.row_version = self.row_version[:length].copy()
        copy.explanations = {}
        copy.order = None
        copy.index = self.index  # append-only: readers check a position against their length
        for undo in reversed(undos):
            for name, at, values, valid in reversed(undo.entries):
                keep = at < length
                if name in copy.columns:
                    column = copy.columns[name]
                    column.values[at[keep]] = values[keep]
                    if column.valid is not None:
                        column.valid[at[keep]] = True if valid is None else valid[keep]
                else:
                    getattr(copy, name)[at[keep]] = values[keep]
        return copy

    def copied(
        self, names: Sequence[str], positions: np.ndarray | None
    ) -> list[tuple[Column, np.ndarray, np.ndarray | None]]:
        """Copies of these columns' values (all `length` rows, or at `positions`); call with
        `lock` held, decode after releasing it."""
        taken = []
        for name in names:
            column = self.columns[name]
            if positions is None:
                values = column.values[: self.length].copy()
                valid = None if column.valid is None else column.valid[: self.length].copy()
            else:
                values = column.values[positions]
                valid = None if column.valid is None else column.valid[positions]
            taken.append((column, values, valid))
        return taken

    def ltv_order(self) -> LtvOrder:
        """The LTVs in order (sorted once per columns, then moved by each patch); call with
        `lock` held."""
        if self.order is None:
            self.order = LtvOrder.of(self.columns["predicted_ltv"].values[: self.length].copy())
        return self.order

    @staticmethod
    def frame(taken: list[tuple[Column, np.ndarray, np.ndarray | None]]) -> pl.DataFrame:
        return pl.DataFrame([column.decode(values, valid) for column, values, valid in taken])
