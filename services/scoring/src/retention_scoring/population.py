"""A tenant's whole population scored at once, cached per (model version, features generation, clock).

Moving the clock features costs a fixed ~20 ms of polars planning whether it is one customer or
thousands, so every score — a single `GET`, a list, a segment table, a score event — is read
from the tenant's scored population, computed in a worker thread and shared by every request
that needs the same key (one computation in flight per tenant). Reasons are computed per
customer on demand and kept with the population they explain.

A population is computed whole (every customer moved to the tenant clock and scored) for a new
model, after a removal, when the tenant clock crosses a UTC day (recency is in days), and when
the tenant has had no new vector for `settle_seconds` while its clock is ahead of the
population's. Otherwise changed vectors are **patched in**: only those customers are moved to
the population's clock and scored, and the value-tier cutoffs are recut over everyone — the
same population a whole pass at that clock computes, for the cost of the changed rows
(`pass_reason`). Each customer scored is counted in
`retention_scoring_customers_scored_total{tenant, reason}`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from retention_scoring import telemetry
from retention_scoring.champions import LoadedChampion
from retention_scoring.scoring import (
    Explanation,
    TierCutoffs,
    at_clock,
    explain,
    score_customers,
    tier_cutoffs,
    value_tiers,
)
from retention_scoring.store import TenantTable

__all__ = [
    "FULL_PASS_REASONS",
    "Population",
    "PopulationKey",
    "Populations",
    "compute_population",
    "pass_reason",
    "patch_population",
]

# Reasons kept per population, at most (a population is replaced on any change anyway).
EXPLANATIONS_KEPT = 100_000

PopulationKey = tuple[str, int, int]  # (model version, features generation, clock in µs)

DAY_US = 86_400_000_000
# Why a population is computed whole; "changed" is a patch of the changed rows.
FULL_PASS_REASONS = ("first", "model", "removed", "day", "settle")


@dataclass
class Population:
    key: PopulationKey
    champion: LoadedChampion
    # Rows aligned: the features at the clock, and the scores.
    features: pl.DataFrame
    scores: pl.DataFrame
    computed_us: np.ndarray  # when each vector was computed by the features service
    partitions: np.ndarray
    index: dict[str, int]
    cutoffs: TierCutoffs
    _explanations: dict[str, Explanation] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.scores.height

    def position(self, customer_id: str) -> int | None:
        return self.index.get(customer_id)

    def cached_explanation(self, customer_id: str) -> Explanation | None:
        return self._explanations.get(customer_id)

    def explanation(self, customer_id: str) -> Explanation:
        """Computed on a miss (~3.5 ms of XGBoost): call it from a worker thread."""
        found = self._explanations.get(customer_id)
        if found is None:
            row = self.index[customer_id]
            found = explain(self.champion.bundle, self.features.slice(row, 1))[0]
            if len(self._explanations) < EXPLANATIONS_KEPT:
                self._explanations[customer_id] = found
        return found

    def explanations(self, positions: np.ndarray, *, keep: bool = True) -> list[Explanation]:
        """Reasons for many customers in one vectorized pass (cached ones reused). `keep`: cache
        the computed ones too (up to the bound `explanation` keeps). A score pass does not: it
        explains every customer whose score changed (all of them the first time), and keeping
        those held ~1.5 KB per customer for as long as the population lived
        (bench/scale/holdings.py)."""
        ids = self.scores["customer_id"].gather(positions).to_list()
        found = [self._explanations.get(customer_id) for customer_id in ids]
        missing = [i for i, explanation in enumerate(found) if explanation is None]
        if missing:
            batch = explain(self.champion.bundle, self.features[positions[missing].tolist()])
            for i, explanation in zip(missing, batch, strict=True):
                found[i] = explanation
                if keep and len(self._explanations) < EXPLANATIONS_KEPT:
                    self._explanations[ids[i]] = explanation
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


def patch_population(current: Population, patch: Patch) -> Population:
    """`current` with the changed rows moved to its clock and scored (blocking: a worker thread).

    Equal to a whole pass at `current`'s clock: a row is moved to max(clock, its own as_of) in
    both, and the tier cutoffs are recut over every customer's LTV."""
    base_us = current.key[2]
    moved = at_clock(patch.features, patch.history, base_us)
    fresh = score_customers(current.champion.bundle, moved, current.cutoffs)
    size = len(patch.partitions)
    take = np.arange(size)
    take[patch.rows] = len(current) + np.arange(len(patch.rows))
    features = pl.concat([current.features, moved])[take]
    scores = pl.concat([current.scores, fresh])[take]
    cutoffs = tier_cutoffs(scores["predicted_ltv"].to_numpy())
    if cutoffs != current.cutoffs:
        tiers = value_tiers(scores["predicted_ltv"].to_numpy(), cutoffs)
        scores = scores.with_columns(pl.Series("value_tier", tiers.tolist(), dtype=pl.String))
    index = current.index
    if patch.new_ids:
        index = dict(index)
        index.update((c, len(current) + i) for i, c in enumerate(patch.new_ids))
    explanations = dict(current._explanations)  # the old population's own stay with it
    for customer_id in moved["customer_id"].to_list():
        explanations.pop(customer_id, None)
    return Population(
        key=(current.key[0], patch.generation, base_us),
        champion=current.champion,
        features=features,
        scores=scores,
        computed_us=patch.computed_us,
        partitions=patch.partitions,
        index=index,
        cutoffs=cutoffs,
        _explanations=explanations,
    )


def compute_population(champion: LoadedChampion, snap: Snapshot) -> Population:
    """Move every customer to the clock and score them all (blocking: a worker thread)."""
    moved = at_clock(snap.features, snap.history, snap.clock_us)
    scores = score_customers(champion.bundle, moved)
    ltv = scores["predicted_ltv"].to_numpy()
    return Population(
        key=snap.key,
        champion=champion,
        features=moved,
        scores=scores,
        computed_us=snap.computed_us,
        partitions=snap.partitions,
        index={c: i for i, c in enumerate(scores["customer_id"].to_list())},
        cutoffs=tier_cutoffs(ltv),
    )


def retiered(population: Population, cutoffs: TierCutoffs) -> Population:
    """The same population with value tiers cut at `cutoffs` (a sharded tenant's, merged over
    every replica); reasons already computed are kept (they do not depend on tiers)."""
    ltv = population.scores["predicted_ltv"].to_numpy()
    tiers = pl.Series("value_tier", value_tiers(ltv, cutoffs).tolist(), dtype=pl.String)
    return replace(population, scores=population.scores.with_columns(tiers), cutoffs=cutoffs)


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
            if wanted is not None and wanted != population.cutoffs:
                population = retiered(population, wanted)
                latest = self._latest.get(table.tenant_id)
                if latest is not None and latest.key == population.key:
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
                population = await asyncio.to_thread(patch_population, current, patch)
                scored = len(patch.rows)
            else:
                snap = snapshot(table, champion, self.clock(table))
                population = await asyncio.to_thread(compute_population, champion, snap)
                scored = len(population)
            telemetry.CUSTOMERS_SCORED.labels(table.tenant_id, reason).inc(scored)
            self._latest[table.tenant_id] = population
            return population
