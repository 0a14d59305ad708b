"""A tenant's whole population scored at once, cached per (model version, features generation, clock).

Moving the clock features costs a fixed ~20 ms of polars planning whether it is one customer or
thousands, so every score — a single `GET`, a list, a segment table, a score event — is read
from the tenant's scored population, computed in a worker thread and shared by every request
that needs the same key (one computation in flight per tenant). Reasons are computed per
customer on demand.

A population is computed whole (every customer moved to the tenant clock and scored) for a new
model, after a removal, when the tenant clock crosses a UTC day (recency is in days), and when
the tenant has had no new vector for `settle_seconds` while its clock is ahead of the
population's. Otherwise changed vectors are **patched in**: only those customers are moved to
the population's clock and scored, and the value-tier cutoffs are recut over everyone — the
same population a whole pass at that clock computes, for the cost of the changed rows
(`pass_reason`). Each customer scored is counted in
`retention_scoring_customers_scored_total{tenant, reason}`.

A patch costs its rows, not the tenant: the population's columns are numpy arrays written in
place (`population_columns.py`) and the value tiers are recut from LTVs kept sorted
(`ltv_order.py`). It is scored in a worker thread and written on the event loop; the population
it supersedes keeps what was overwritten, so whoever still holds it reads it whole. Reasons are
kept per customer with the version of the row they explain, so a patched customer's are
computed again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from retention_scoring import telemetry
from retention_scoring.champions import LoadedChampion
from retention_scoring.ltv_order import LtvOrder
from retention_scoring.population_columns import PopulationColumns, Undo
from retention_scoring.scoring import (
    Explanation,
    TierCutoffs,
    at_clock,
    explain,
    score_customers,
    tier_cutoffs,
)
from retention_scoring.store import TenantTable
from retention_shared.events import ValueTier

__all__ = [
    "FULL_PASS_REASONS",
    "Population",
    "PopulationKey",
    "Populations",
    "apply_patch",
    "compute_population",
    "pass_reason",
    "patch_population",
    "score_patch",
]

# Reasons kept per population, at most (a population is replaced on any change anyway).
EXPLANATIONS_KEPT = 100_000

PopulationKey = tuple[str, int, int]  # (model version, features generation, clock in µs)

DAY_US = 86_400_000_000
# Why a population is computed whole; "changed" is a patch of the changed rows.
FULL_PASS_REASONS = ("first", "model", "removed", "day", "settle")


class Population:
    """A tenant's scored population at one generation: a view of `PopulationColumns`.

    A patch writes the columns in place and returns a new `Population`; the one it replaced is
    *superseded*: it keeps the values the patch overwrote (`Undo`), and the first read of it after
    that restores its own copy (rare: only a reader that held it across the patch). So a reader
    sees one population whole, never a mix. Whole frames (`features`, `scores`) are built on
    first use and kept with this population; rows are read without them (`feature_rows`,
    `score_rows`)."""

    def __init__(
        self,
        key: PopulationKey,
        champion: LoadedChampion,
        columns: PopulationColumns,
        cutoffs: TierCutoffs,
    ) -> None:
        self.key = key
        self.champion = champion
        self.cutoffs = cutoffs
        self._columns = columns
        self._length = columns.length
        self._generation = columns.generation
        # Set when a write supersedes this population: what it overwrote, and the next one.
        self._superseded: tuple[Undo, Population] | None = None
        self._frames: dict[str, pl.DataFrame] = {}

    def __len__(self) -> int:
        return self._length

    def _locked(self) -> PopulationColumns:
        """This population's columns with their lock held (restored first if superseded)."""
        while True:
            columns = self._columns
            columns.lock.acquire()
            if self._columns is not columns:
                columns.lock.release()
                continue
            if self._generation == columns.generation:
                return columns
            # The writes since this population, oldest first: they form a chain of successors
            # (kept even once a successor restored its own copy).
            undos: list[Undo] = []
            link = self._superseded
            while link is not None:
                undos.append(link[0])
                if link[0].generation == columns.generation:
                    break
                link = link[1]._superseded
            try:
                own = columns.restored(self._length, undos)
            finally:
                columns.lock.release()
            self._columns, self._generation = own, own.generation

    def _supersede(self, undo: Undo, successor: Population) -> None:
        self._superseded = (undo, successor)

    def _read(self, names: list[str], positions: np.ndarray | None) -> pl.DataFrame:
        columns = self._locked()
        try:
            taken = columns.copied(names, positions)
        finally:
            columns.lock.release()
        return PopulationColumns.frame(taken)

    def _whole(self, which: str) -> pl.DataFrame:
        frame = self._frames.get(which)
        if frame is None:
            columns = self._columns
            names = columns.feature_names if which == "features" else columns.score_names
            frame = self._frames[which] = self._read(names, None)
        return frame

    @property
    def features(self) -> pl.DataFrame:
        """The features at the clock, one row per customer (built on first use)."""
        return self._whole("features")

    @property
    def scores(self) -> pl.DataFrame:
        """The scores, rows aligned with `features` (built on first use)."""
        return self._whole("scores")

    def feature_rows(self, positions: np.ndarray | list[int]) -> pl.DataFrame:
        return self._read(self._columns.feature_names, np.asarray(positions, dtype=np.int64))

    def score_rows(
        self, positions: np.ndarray | list[int], columns: list[str] | None = None
    ) -> pl.DataFrame:
        names = self._columns.score_names if columns is None else columns
        return self._read(names, np.asarray(positions, dtype=np.int64))

    def _array(self, name: str, positions: np.ndarray | None) -> np.ndarray:
        columns = self._locked()
        try:
            array = getattr(columns, name)
            return array[: self._length].copy() if positions is None else array[positions]
        finally:
            columns.lock.release()

    @property
    def partitions(self) -> np.ndarray:
        """Each customer's partition (a copy)."""
        return self._array("partitions", None)

    def partitions_at(self, positions: np.ndarray) -> np.ndarray:
        return self._array("partitions", np.asarray(positions, dtype=np.int64))

    def computed_at(self, positions: np.ndarray | list[int] | int) -> np.ndarray:
        """When the features service computed these customers' vectors (µs)."""
        return self._array("computed_us", np.asarray(positions, dtype=np.int64))

    def ltv(self) -> np.ndarray:
        columns = self._locked()
        try:
            return columns.columns["predicted_ltv"].values[: self._length].copy()
        finally:
            columns.lock.release()

    @property
    def index(self) -> dict[str, int]:
        """Customer id → position, for this population's customers (a new dict)."""
        return {c: i for i, c in enumerate(self._ids())}

    def _ids(self) -> list[str]:
        columns = self._locked()
        try:
            return columns.columns["customer_id"].values[: self._length].tolist()
        finally:
            columns.lock.release()

    def position(self, customer_id: str) -> int | None:
        found = self._columns.index.get(customer_id)
        return found if found is not None and found < self._length else None

    def _cached(self, columns: PopulationColumns, customer_id: str, row: int) -> Explanation | None:
        entry = columns.explanations.get(customer_id)
        if entry is not None and entry[0] == columns.row_version[row]:
            return entry[1]  # type: ignore[return-value]
        return None

    def cached_explanation(self, customer_id: str) -> Explanation | None:
        row = self.position(customer_id)
        if row is None:
            return None
        columns = self._locked()
        try:
            return self._cached(columns, customer_id, row)
        finally:
            columns.lock.release()

    def _keep(self, customer_id: str, row: int, explanation: Explanation) -> None:
        columns = self._locked()
        try:
            if len(columns.explanations) < EXPLANATIONS_KEPT or customer_id in columns.explanations:
                columns.explanations[customer_id] = (int(columns.row_version[row]), explanation)
        finally:
            columns.lock.release()

    def explanation(self, customer_id: str) -> Explanation:
        """Computed on a miss (~3.5 ms of XGBoost): call it from a worker thread."""
        found = self.cached_explanation(customer_id)
        if found is None:
            row = self.position(customer_id)
            if row is None:
                raise KeyError(customer_id)
            found = explain(self.champion.bundle, self.feature_rows([row]))[0]
            self._keep(customer_id, row, found)
        return found

    def explanations(self, positions: np.ndarray, *, keep: bool = True) -> list[Explanation]:
        """Reasons for many customers in one vectorized pass (cached ones reused). `keep`: cache
        the computed ones too (up to the bound `explanation` keeps). A score pass does not: it
        explains every customer whose score changed (all of them the first time), and keeping
        those held ~1.5 KB per customer for as long as the population lived
        (bench/scale/holdings.py)."""
        positions = np.asarray(positions, dtype=np.int64)
        ids = self.score_rows(positions, ["customer_id"])["customer_id"].to_list()
        columns = self._locked()
        try:
            found = [self._cached(columns, c, int(p)) for c, p in zip(ids, positions, strict=True)]
        finally:
            columns.lock.release()
        missing = [i for i, explanation in enumerate(found) if explanation is None]
        if missing:
            batch = explain(self.champion.bundle, self.feature_rows(positions[missing]))
            for i, explanation in zip(missing, batch, strict=True):
                found[i] = explanation
                if keep:
                    self._keep(ids[i], int(positions[i]), explanation)
        return found  # type: ignore[return-value]  # every None was filled


@dataclass(frozen=True)
class Snapshot:
    """What a worker thread needs, copied from a table on the event loop."""

    key: PopulationKey
    features: pl.DataFrame
    history: pl.DataFrame
    computed_us: np.ndarray
    partitions: np.ndarray
    clock_us: int


def snapshot(table: TenantTable, champion: LoadedChampion, clock_us: int) -> Snapshot:
    rows = len(table)
    return Snapshot(
        key=(champion.version, table.generation, clock_us),
        features=table.features_frame(),
        history=table.history_frame(),
        computed_us=table.computed_us[:rows].copy(),
        partitions=table.partition[:rows].copy(),
        clock_us=clock_us,
    )


@dataclass(frozen=True)
class Patch:
    """The changed rows of a table since a population's generation, copied on the event loop."""

    generation: int
    rows: np.ndarray
    features: pl.DataFrame
    history: pl.DataFrame
    computed_us: np.ndarray
    partitions: np.ndarray
    new_ids: list[str]  # customers of rows the population does not have yet, in row order


def changes(table: TenantTable, current: Population) -> Patch:
    rows = table.changed_since(current.key[1])
    size = len(table)
    return Patch(
        generation=table.generation,
        rows=rows,
        features=table.features_frame(rows),
        history=table.history_frame(rows),
        computed_us=table.computed_us[:size].copy(),
        partitions=table.partition[:size].copy(),
        new_ids=table.ids[len(current) : size],
    )


def pass_reason(
    current: Population | None,
    table: TenantTable,
    version: str,
    clock_us: int,
    settle_seconds: float,
    now: float,
) -> str | None:
    """What `current` needs to serve `table` at `clock_us`: a whole pass (one of
    `FULL_PASS_REASONS`), "changed" (patch in the rows changed since), or None (it serves)."""
    if current is None:
        return "first"
    current_version, generation, base_us = current.key
    if current_version != version:
        return "model"
    if table.removed_generation > generation:
        return "removed"  # rows moved: positions no longer match
    if clock_us // DAY_US != base_us // DAY_US:
        return "day"
    if clock_us != base_us and now - table.changed_at >= settle_seconds:
        return "settle"  # the burst is over: everyone to the exact tenant clock
    if table.generation != generation:
        return "changed"
    return None


@dataclass(frozen=True)
class ScoredPatch:
    """A patch's rows moved and scored, the LTV order after it, and the customers whose value
    tier the moved cutoffs change (positions and tier indices, 0 Low … 3 VIP)."""

    patch: Patch
    generation: int  # the columns' generation it was scored against
    moved: pl.DataFrame
    fresh: pl.DataFrame
    order: LtvOrder
    cutoffs: TierCutoffs
    retiered: np.ndarray
    tiers: np.ndarray


def score_patch(current: Population, patch: Patch) -> ScoredPatch:
    """Move the changed rows to `current`'s clock and score them (blocking: a worker thread).

    Costs the changed rows, plus moving their LTVs in the sorted order of everyone's (a
    memmove) to read the tier cutoffs, and the customers between an old and a new cutoff."""
    moved = at_clock(patch.features, patch.history, current.key[2])
    fresh = score_customers(current.champion.bundle, moved, current.cutoffs)
    columns = current._locked()
    try:
        generation = columns.generation
        order = columns.ltv_order()
        existing = patch.rows[patch.rows < len(current)]
        old = columns.columns["predicted_ltv"].values[existing]
    finally:
        columns.lock.release()
    order = order.moved(patch.rows, old, fresh["predicted_ltv"].to_numpy())
    cutoffs = order.cutoffs()
    retiered, ltv = order.crossing(current.cutoffs, cutoffs)
    tiers = tier_indices(ltv, cutoffs)
    return ScoredPatch(patch, generation, moved, fresh, order, cutoffs, retiered, tiers)


def tier_indices(ltv: np.ndarray, cutoffs: TierCutoffs) -> np.ndarray:
    return np.searchsorted(np.asarray(cutoffs), ltv, side="right")


def _write_tiers(columns: PopulationColumns, at: np.ndarray, tiers: np.ndarray) -> Undo:
    column = columns.columns["value_tier"]
    codes = column.code([t.value for t in ValueTier])  # Low, Medium, High, VIP
    return columns.write_codes("value_tier", at, codes[tiers])


def apply_patch(current: Population, scored: ScoredPatch) -> Population:
    """Write a scored patch into `current`'s columns and return the population it makes
    (`current` is superseded). Synchronous and O(changed rows + retiered rows): call it on the
    event loop, where no reader runs meanwhile."""
    patch = scored.patch
    columns = current._locked()
    try:
        # Populations.get holds the tenant's lock from scoring to writing: nothing wrote between.
        assert columns.generation == scored.generation, "a write between scoring and applying"
        undo = columns.write(
            patch.rows,
            scored.moved,
            scored.fresh,
            patch.computed_us,
            patch.partitions,
            len(patch.partitions),
        )
        undos = [undo, _write_tiers(columns, scored.retiered, scored.tiers)]
        for customer_id in scored.moved["customer_id"].to_list():  # stale: room for others
            columns.explanations.pop(customer_id, None)
        columns.order = scored.order
        patched = Population(
            (current.key[0], patch.generation, current.key[2]),
            current.champion,
            columns,
            scored.cutoffs,
        )
        _chain(current, undos, patched)
    finally:
        columns.lock.release()
    return patched


def _chain(current: Population, undos: list[Undo], successor: Population) -> None:
    """`current` superseded by `successor` through `undos` (one write each, oldest first; their
    entries are undone newest first, so one `Undo` holds them all)."""
    entries = [entry for undo in undos for entry in undo.entries]
    current._supersede(Undo(entries, undos[-1].generation), successor)


def patch_population(current: Population, patch: Patch) -> Population:
    """`current` with the changed rows moved to its clock and scored, written in place.

    Equal to a whole pass at `current`'s clock: a row is moved to max(clock, its own as_of) in
    both, and the tier cutoffs are recut over every customer's LTV."""
    return apply_patch(current, score_patch(current, patch))


def compute_population(champion: LoadedChampion, snap: Snapshot) -> Population:
    """Move every customer to the clock and score them all (blocking: a worker thread)."""
    moved = at_clock(snap.features, snap.history, snap.clock_us)
    scores = score_customers(champion.bundle, moved)
    cutoffs = tier_cutoffs(scores["predicted_ltv"].to_numpy())
    columns = PopulationColumns(moved, scores, snap.computed_us, snap.partitions)
    columns.ltv_order()  # sorted here, in the worker thread, not in the first patch
    return Population(snap.key, champion, columns, cutoffs)


def retiered(population: Population, cutoffs: TierCutoffs) -> Population:
    """The same population with value tiers cut at `cutoffs` (a sharded tenant's, merged over
    every replica), written in place (`population` is superseded); reasons already computed are
    kept (they do not depend on tiers). On the event loop, as `apply_patch`."""
    columns = population._locked()
    try:
        at, ltv = columns.ltv_order().crossing(population.cutoffs, cutoffs)
        undo = _write_tiers(columns, at, tier_indices(ltv, cutoffs))
        result = Population(population.key, population.champion, columns, cutoffs)
        _chain(population, [undo], result)
    finally:
        columns.lock.release()
    return result


Clock = Callable[[TenantTable], int]
# A sharded tenant's value-tier cutoffs for a model version (None: cut at the population's own).
SharedCutoffs = Callable[[str, str], TierCutoffs | None]


class Populations:
    """The latest scored population per tenant, recomputed whole or patched (`pass_reason`)."""

    def __init__(
        self, clock: Clock, cutoffs: SharedCutoffs | None = None, settle_seconds: float = 10.0
    ) -> None:
        self.clock = clock
        self.cutoffs = cutoffs
        self.settle_seconds = settle_seconds
        self._latest: dict[str, Population] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def latest(self, tenant_id: str) -> Population | None:
        return self._latest.get(tenant_id)

    def _reason(self, table: TenantTable, champion: LoadedChampion) -> str | None:
        return pass_reason(
            self._latest.get(table.tenant_id),
            table,
            champion.version,
            self.clock(table),
            self.settle_seconds,
            time.monotonic(),
        )

    async def get(self, table: TenantTable, champion: LoadedChampion) -> Population:
        """The population at the tenant's current clock, scored by `champion`."""
        population = await self._get(table, champion)
        if self.cutoffs is not None:
            wanted = self.cutoffs(table.tenant_id, champion.version)
            # Retiered in place only while it is the latest (no await between: no patch either).
            latest = self._latest.get(table.tenant_id)
            if wanted is not None and wanted != population.cutoffs and latest is population:
                population = retiered(population, wanted)
                self._latest[table.tenant_id] = population
        return population

    async def _get(self, table: TenantTable, champion: LoadedChampion) -> Population:
        if self._reason(table, champion) is None:
            return self._latest[table.tenant_id]
        lock = self._locks.setdefault(table.tenant_id, asyncio.Lock())
        async with lock:
            # Another request may have computed it while this one waited.
            reason = self._reason(table, champion)
            current = self._latest.get(table.tenant_id)
            if reason is None and current is not None:
                return current
            if reason == "changed" and current is not None:
                patch = changes(table, current)
                # Scored in a thread; written on the loop, where no reader runs meanwhile.
                ready = await asyncio.to_thread(score_patch, current, patch)
                population = apply_patch(current, ready)
                scored = len(patch.rows)
            else:
                snap = snapshot(table, champion, self.clock(table))
                population = await asyncio.to_thread(compute_population, champion, snap)
                scored = len(population)
            telemetry.CUSTOMERS_SCORED.labels(table.tenant_id, reason).inc(scored)
            self._latest[table.tenant_id] = population
            return population
