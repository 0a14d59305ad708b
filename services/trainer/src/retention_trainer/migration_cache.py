"""Segment migrations read from the lake with the tenant's champion, cached until either changes.

An answer is cached per (tenant, lake state, champion model tag, from, to), with the dates
resolved against the tenant clock, so the default range and the same dates written out share an
entry. The lake state is :meth:`TransactionLake.state`, a digest of the tenant's part listing:
a warm request costs that listing, a champion look-up and a dict look-up. A cold one reads the
tenant's orders (compaction held off) and computes the matrix in a worker thread; cold
computations run one at a time (they are CPU-bound), and a request that waited for another
finds its answer cached. An answer is cached only if the lake did not change while it was read.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime

from retention_bundle.model_store import load_segmenter
from retention_bundle.models.segmenter import Segmenter
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.errors import ChampionUnreadable, NoChampion, NoOrders
from retention_trainer.segment_migration import (
    SegmentMigration,
    date_clock,
    migration_matrix,
    migration_range,
)
from retention_trainer.store import RunStore

__all__ = ["MigrationAnswer", "SegmentMigrations"]

ANSWERS_KEPT = 256

AnswerKey = tuple[str, str, str, date, date]  # tenant, lake state, model tag, from, to


@dataclass(frozen=True)
class MigrationAnswer:
    tenant_id: str
    model_version: str
    start: date
    end: date
    migration: SegmentMigration


class SegmentMigrations:
    def __init__(self, lake: LakeConsumer, store: RunStore, kept: int = ANSWERS_KEPT) -> None:
        self.lake = lake
        self.store = store
        self.kept = kept
        self._answers: OrderedDict[AnswerKey, MigrationAnswer] = OrderedDict()
        # The tenant clock (latest order) per tenant and lake state, to resolve dates warm.
        self._clocks: dict[str, tuple[str, datetime]] = {}
        self._segmenters: dict[str, tuple[str, Segmenter]] = {}  # tenant: (model tag, segmenter)
        self._computing = asyncio.Lock()

    async def migration(
        self, tenant_id: str, start: date | None, end: date | None
    ) -> MigrationAnswer:
        """Raises NoChampion, NoOrders, ChampionUnreadable, or InvalidRange (a `to` after the
        latest order, a `from` not before the `to` it defaults to)."""
        champion = self.store.champion(tenant_id)
        if champion is None:
            raise NoChampion(tenant_id)
        state = await asyncio.to_thread(self.lake.lake.state, tenant_id)
        found = self._cached(tenant_id, state, champion.model_tag, start, end)
        if found is not None:
            return found
        async with self._computing:
            found = self._cached(tenant_id, state, champion.model_tag, start, end)
            if found is not None:
                return found
            return await self._compute(tenant_id, state, champion.model_tag, start, end)

    def _cached(
        self, tenant_id: str, state: str, tag: str, start: date | None, end: date | None
    ) -> MigrationAnswer | None:
        known = self._clocks.get(tenant_id)
        if known is None or known[0] != state:
            return None
        key = (tenant_id, state, tag, *migration_range(start, end, known[1]))
        found = self._answers.get(key)
        if found is not None:
            self._answers.move_to_end(key)
        return found

    async def _compute(
        self, tenant_id: str, state: str, tag: str, start: date | None, end: date | None
    ) -> MigrationAnswer:
        async with self.lake.reading() as lake:
            orders = await asyncio.to_thread(lake.orders, tenant_id)
        if orders.is_empty():
            raise NoOrders(tenant_id)
        clock = orders["occurred_at"].max()
        assert isinstance(clock, datetime)
        start, end = migration_range(start, end, clock)
        segmenter = await self._segmenter(tenant_id, tag)
        migration = await asyncio.to_thread(
            migration_matrix, orders, segmenter, date_clock(start, clock), date_clock(end, clock)
        )
        answer = MigrationAnswer(tenant_id, tag.split(":", 1)[1], start, end, migration)
        # Appends do not wait for readers: the orders may be newer than `state`.
        if await asyncio.to_thread(self.lake.lake.state, tenant_id) == state:
            self._clocks[tenant_id] = (state, clock)
            self._answers[(tenant_id, state, tag, start, end)] = answer
            while len(self._answers) > self.kept:
                self._answers.popitem(last=False)
        return answer

    async def _segmenter(self, tenant_id: str, tag: str) -> Segmenter:
        known = self._segmenters.get(tenant_id)
        if known is not None and known[0] == tag:
            return known[1]
        try:
            segmenter = await asyncio.to_thread(load_segmenter, tag)
        except Exception as error:
            raise ChampionUnreadable(f"{tag}: {type(error).__name__}: {error}") from error
        self._segmenters[tenant_id] = (tag, segmenter)
        return segmenter
