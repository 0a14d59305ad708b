"""The current population scored by the tenant's previous champion, for insights to compare with.

The previous champion scores exactly the rows the current one scored (the same features at the
same clock), so a difference is the model's and nothing else. One vectorized pass in a worker
thread, cached per (population, previous version): the population is replaced whenever a
vector, the clock or the champion changes, and so is this.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import polars as pl

from retention_scoring.population import Population, PopulationKey
from retention_scoring.previous_champions import PreviousChampions
from retention_scoring.scoring import score_customers

__all__ = ["Comparison", "Comparisons"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Comparison:
    version: str | None  # the previous champion, if the tenant has one
    scores: pl.DataFrame | None  # its scores of the population's rows, if it could score them
    ltv_horizon_days: int | None
    problem: str | None = None


class Comparisons:
    def __init__(self, previous: PreviousChampions) -> None:
        self.previous = previous
        self._latest: dict[str, tuple[tuple[PopulationKey, str], Comparison]] = {}

    async def of(self, population: Population) -> Comparison:
        tenant_id = population.champion.tenant_id
        version = self.previous.version(tenant_id)
        if version is None:
            return Comparison(None, None, None)
        cached = self._latest.get(tenant_id)
        if cached is not None and cached[0] == (population.key, version):
            return cached[1]
        champion = await self.previous.get(tenant_id)
        if champion is None:
            problem = self.previous.problems.get(tenant_id, "previous model not loaded")
            return Comparison(version, None, None, problem)
        bundle = champion.bundle
        try:
            # Tiers are not compared, so no cutoffs: the frame's own quantiles do.
            scores = await asyncio.to_thread(score_customers, bundle, population.features)
        except Exception as exc:  # e.g. a feature the older model needs is gone from the registry
            log.warning(
                "the previous champion cannot score the population",
                extra={"tenant_id": tenant_id, "version": champion.version, "error": str(exc)},
            )
            comparison = Comparison(
                champion.version, None, None, f"previous model cannot score today's features: {exc}"
            )
        else:
            comparison = Comparison(champion.version, scores, bundle.ltv.horizon_days)
        self._latest[tenant_id] = ((population.key, champion.version), comparison)
        return comparison
