"""A tenant's whole population scored at once, cached per (model version, features generation, clock).

Moving the clock features costs a fixed ~20 ms of polars planning whether it is one customer or
thousands, so every score — a single `GET`, a list, a segment table, a score event — is read
from the tenant's scored population: computed in one vectorized pass in a worker thread when
the model, any vector or the clock changed since the last one, and shared by every request
that needs the same key (one computation in flight per tenant). Reasons are computed per
customer on demand and kept with the population they explain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

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

__all__ = ["Population", "PopulationKey", "Populations", "compute_population"]

# Reasons kept per population, at most (a population is replaced on any change anyway).
EXPLANATIONS_KEPT = 100_000

PopulationKey = tuple[str, int, int]  # (model version, features generation, clock in µs)


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
    """The latest scored population per tenant, recomputed only when its key changed."""

    def __init__(self, clock: Clock, cutoffs: SharedCutoffs | None = None) -> None:
        self.clock = clock
        self.cutoffs = cutoffs
        self._latest: dict[str, Population] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def latest(self, tenant_id: str) -> Population | None:
        return self._latest.get(tenant_id)

    def _fresh(self, table: TenantTable, champion: LoadedChampion) -> Population | None:
        current = self._latest.get(table.tenant_id)
        key = (champion.version, table.generation, self.clock(table))
        return current if current is not None and current.key == key else None

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
        if (fresh := self._fresh(table, champion)) is not None:
            return fresh
        lock = self._locks.setdefault(table.tenant_id, asyncio.Lock())
        async with lock:
            # Another request may have computed it while this one waited.
            if (fresh := self._fresh(table, champion)) is not None:
                return fresh
            snap = snapshot(table, champion, self.clock(table))
            population = await asyncio.to_thread(compute_population, champion, snap)
            self._latest[table.tenant_id] = population
            return population
