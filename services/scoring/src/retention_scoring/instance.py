"""One scoring instance's moving parts, built together and started and stopped in order.

Three topics are read whole by every instance (no consumer group): `customer-features` into
the feature store, `model-events` into the champions, `customer-scores` into what was last
published (the Kafka kit's `TopicReader`). A consumer group on `customer-features` that never
fetches splits the duty of announcing score changes and drift between instances
(`consumers/duty.py`). What goes out is in `publishers/`. A tenant's scores are marked for
rescoring when its features change, its champion is swapped, or the last of the three readers
catches up (one full pass over every tenant).

Sharded (`RETENTION_SCORING_SHARDED=true`, `sharding.py`): `customer-features` is read only for
the partitions the group assigns this instance, and `scoring-replicas` tells who serves what.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import numpy as np

from retention_scoring import erasure, telemetry
from retention_scoring.champions import Champions, LoadedChampion, fetch_bundle
from retention_scoring.consumers.customer_features import FeaturesConsumer, Touched
from retention_scoring.consumers.duty import PublishingDuty
from retention_scoring.consumers.model_events import ModelEventsConsumer
from retention_scoring.consumers.scoring_replicas import ReplicasConsumer
from retention_scoring.drift_watch import DriftWatch
from retention_scoring.erasure_ledger import ErasureLedger
from retention_scoring.population import Populations
from retention_scoring.publishers.customer_erasures import CustomerErasuresPublisher
from retention_scoring.publishers.customer_scores import CustomerScoresPublisher
from retention_scoring.publishers.drift_events import DriftEventsPublisher
from retention_scoring.publishers.scoring_replicas import ScoringReplicasPublisher
from retention_scoring.score_events import ScoreEvents
from retention_scoring.scoring import TierCutoffs
from retention_scoring.sharding import Shard
from retention_scoring.shards import Membership
from retention_scoring.state import ScoringState, Sharding, tenant_clock
from retention_scoring.store import FeatureStore
from retention_scoring.tiers import sketch
from retention_shared.erasure import subscribe_erasures
from retention_shared.events import LtvSketch
from retention_shared.health import CheckResult
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.dead_letters import DeadLetters
from retention_shared.kafka.topic_reader import BatchHandler, TopicReader
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel

__all__ = ["HOUSEKEEPING_SECONDS", "ScoringInstance"]

HOUSEKEEPING_SECONDS = 15.0


class ScoringInstance:
    """The state, readers, publishers and background tasks of one scoring process."""

    def __init__(self, ctx: ServiceContext) -> None:
        settings = ctx.settings
        self.producer = BulkProducer(settings)
        self.champions = Champions(load=lambda tag: asyncio.to_thread(fetch_bundle, tag, settings))
        self.membership = Membership()
        sharded = settings.scoring_sharded
        self.state = ScoringState(
            settings=settings,
            store=FeatureStore(),
            champions=self.champions,
            populations=Populations(
                tenant_clock(settings, self.membership.clock if sharded else None),
                self._shared_cutoffs if sharded else None,
                settings.scoring_settle_seconds,
            ),
        )
        self.duty = PublishingDuty(ctx, on_change=self._rescore_all)
        self.score_events = ScoreEvents(
            self.state,
            CustomerScoresPublisher(ctx, self.producer),
            ready=self.caught_up,
            owns=self.duty.owns,
            history=self.state.history,
            chunk_size=settings.scoring_publish_chunk,
        )
        self._forgetting: set[asyncio.Task[int]] = set()
        self._sketches: dict[str, tuple[tuple[object, frozenset[int]], LtvSketch]] = {}
        self.champions.on_swap.append(self._champion_swapped)
        features = FeaturesConsumer(
            self.state.store,
            DeadLetters(ctx, self.producer),
            on_change=self._features_changed,
            on_removed=self._customers_erased,
        )
        subscribe_erasures(
            ctx,
            erasure.GROUP_ID,
            ctx.name,
            erasure.ScoringErasure(self.state.store, self.score_events).erase,
        )
        self.models = ModelEventsConsumer(self.champions, ctx.counts)
        self.models_reader = TopicReader(
            ctx, "model-events", self.models.handle, on_caught_up=self._models_caught_up
        )
        self._replicas_readers: list[TopicReader] = []
        # The customers' topics: read whole, or (sharded) the assigned partitions of both.
        self.features_reader: TopicReader | Shard
        self.scores_reader: TopicReader | Shard
        if sharded:
            shard = self._shard(ctx, features.handle)
            self.features_reader = self.scores_reader = shard
            self.readers: list[TopicReader | Shard] = [shard, self.models_reader]
        else:
            self.features_reader = TopicReader(
                ctx,
                "customer-features",
                features.handle,
                lag=telemetry.CONSUMER_LAG,
                on_caught_up=self._reader_caught_up,
            )
            self.scores_reader = TopicReader(
                ctx,
                "customer-scores",
                self.score_events.read_back,
                on_caught_up=self._reader_caught_up,
            )
            self.readers = [self.features_reader, self.scores_reader, self.models_reader]
        # Not in `readers`: what became of erasures does not hold up scores.
        self.ledger = ErasureLedger()
        self._ledger_readers = [
            TopicReader(ctx, "customer-erasures", self.ledger.read_requests),
            TopicReader(ctx, "erasure-audit", self.ledger.read_audit),
        ]
        self.erasure_requests = CustomerErasuresPublisher(ctx)
        self.drift = DriftWatch(
            self.state,
            DriftEventsPublisher(ctx, self.producer),
            ready=self.caught_up,
            lead=self.duty.lead,
            on_tick=self.score_events.mark,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def _shard(self, ctx: ServiceContext, handle: BatchHandler) -> Shard:
        settings = ctx.settings
        replica_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        url = settings.scoring_replica_url or f"http://{settings.bind_host}:{settings.scoring_port}"
        shard = Shard(
            ctx,
            self.state.store,
            {"customer-features": handle, "customer-scores": self.score_events.read_back},
            self.membership,
            ScoringReplicasPublisher(ctx, self.producer),
            replica_id,
            url,
            on_held=self._reader_caught_up,
            ltv_sketches=self._ltv_sketches,
            on_drop=self._partitions_dropped,
        )
        self.duty.on_assigned = shard.assigned_partitions
        replicas = ReplicasConsumer(self.membership, shard.membership_changed)
        self._replicas_readers = [TopicReader(ctx, "scoring-replicas", replicas.handle)]
        self.state.sharding = Sharding(
            replica_id,
            self.membership,
            held=lambda: shard.held,
            partition_count=lambda: self.duty.partition_count() or settings.topic_partitions,
        )
        return shard

    def _shared_cutoffs(self, tenant_id: str, model_version: str) -> TierCutoffs | None:
        sharding = self.state.sharding
        if sharding is None:
            return None
        return self.membership.cutoffs(tenant_id, model_version, sharding.partition_count())

    def _ltv_sketches(self, owned: set[int]) -> dict[str, LtvSketch]:
        """Per tenant, the predicted LTVs of the owned partitions under its champion, from the
        latest population (kept while neither changed: a sketch sorts the shard's values)."""
        sketches = {}
        for tenant_id in list(self.state.store.tenants):
            population = self.state.populations.latest(tenant_id)
            champion = self.champions.get(tenant_id)
            if population is None or champion is None:
                continue
            if population.champion.version != champion.version:
                continue
            key = (population.key, frozenset(owned))
            cached = self._sketches.get(tenant_id)
            if cached is None or cached[0] != key:
                mask = np.isin(population.partitions, list(owned))
                ltv = population.ltv()[mask]
                cached = self._sketches[tenant_id] = (key, sketch(champion.version, owned, ltv))
            sketches[tenant_id] = cached[1]
        return sketches

    def caught_up(self) -> bool:
        return all(reader.caught_up.is_set() for reader in self.readers)

    async def features_check(self) -> CheckResult:
        return self.features_reader.status()

    async def scores_check(self) -> CheckResult:
        return self.scores_reader.status()

    def _partitions_dropped(self, partitions: set[int]) -> None:
        sharding = self.state.sharding
        assert sharding is not None
        self.score_events.let_go(
            lambda tenant, customer: sharding.partition_of(tenant, customer) in partitions
        )

    async def start(self) -> None:
        await self.producer.start()
        for reader in [*self._replicas_readers, *self.readers, *self._ledger_readers]:
            await reader.start()
        await self.duty.start()
        self._tasks.append(asyncio.create_task(self.drift.run(), name="drift checks"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))

    async def stop(self) -> None:
        await cancel([*self._tasks, *self._forgetting])
        await self.duty.stop()
        await self.score_events.stop()
        await self.champions.stop()
        for reader in [*self.readers, *self._ledger_readers, *self._replicas_readers]:
            await reader.stop()
        await self.producer.stop()

    def _rescore_all(self) -> None:
        for tenant_id in list(self.state.store.tenants):
            self.score_events.mark(tenant_id)

    def _features_changed(self, touched: Touched) -> None:
        for tenant_id, customer_ids in touched.items():
            self.score_events.mark(tenant_id, customer_ids)

    def _customers_erased(self, removed: Touched) -> None:
        for tenant_id, customer_ids in removed.items():
            task = asyncio.create_task(self.score_events.forget(tenant_id, customer_ids))
            self._forgetting.add(task)
            task.add_done_callback(self._forgetting.discard)

    async def _champion_swapped(self, champion: LoadedChampion) -> None:
        self.score_events.mark(champion.tenant_id)

    async def _reader_caught_up(self) -> None:
        if self.caught_up():  # the last of the three: one full pass over every tenant
            self._rescore_all()

    async def _models_caught_up(self) -> None:
        await self.models.start_serving()
        await self._reader_caught_up()

    async def _housekeeping(self) -> None:
        while True:
            self.champions.observe_age()
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
