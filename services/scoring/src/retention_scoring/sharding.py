"""A sharded replica's share of the customers (RETENTION_SCORING_SHARDED=true).

The replica materializes only the partitions the consumer group (`consumers/duty.py`) assigns
it: for each, `customer-features` (the feature store) and `customer-scores` (what was announced,
the score history) — both keyed `tenant:customer` with the same partition count, so a partition
holds the same customers on both — each read from the first offset by readers of its own. A
partition counts as held once both readers caught up, and only then is it announced on
`scoring-replicas` (with the generation it was assigned in). A partition the group moved
elsewhere stays held — and answered — until the new owner announced it under a newer
generation; then its customers are dropped. The replica
re-announces every few seconds (a heartbeat, and each tenant's latest clock, so every replica
moves recency features to the same tenant clock, and the predicted LTVs of the partitions it
owns, so every replica cuts the same value tiers: `tiers.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from retention_scoring import telemetry
from retention_scoring.publishers.scoring_replicas import ScoringReplicasPublisher
from retention_scoring.shards import Local, Membership
from retention_scoring.store import FeatureStore
from retention_shared.events import LtvSketch, ScoringReplica
from retention_shared.health import CheckResult
from retention_shared.kafka.topic_reader import BatchHandler, TopicReader
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel

__all__ = ["ANNOUNCE_SECONDS", "Shard"]

log = logging.getLogger(__name__)

ANNOUNCE_SECONDS = 5.0


class Shard:
    def __init__(
        self,
        ctx: ServiceContext,
        store: FeatureStore,
        handles: dict[str, BatchHandler],
        membership: Membership,
        publisher: ScoringReplicasPublisher,
        replica_id: str,
        url: str,
        on_held: Callable[[], Awaitable[None]] | None = None,
        ltv_sketches: Callable[[set[int]], dict[str, LtvSketch]] = lambda owned: {},
        on_drop: Callable[[set[int]], None] = lambda partitions: None,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.handles = handles
        self.on_drop = on_drop
        self.membership = membership
        self.publisher = publisher
        self.replica_id = replica_id
        self.url = url
        self.on_held = on_held
        self.ltv_sketches = ltv_sketches
        self.readers: dict[int, list[TopicReader]] = {}
        self.assigned: dict[int, int] = {}  # partition → generation, as the group last said
        self.held: dict[int, int] = {}  # partition → generation, caught up and announced
        # Every assigned partition held (readiness, and when score events may start).
        self.caught_up = asyncio.Event()
        self._changes: asyncio.Queue[None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._announced: ScoringReplica | None = None
        self._announced_at = 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shard")

    async def stop(self) -> None:
        await cancel([self._task])
        for readers in self.readers.values():
            for reader in readers:
                await reader.stop()
        try:
            await self.publisher.leave(self.replica_id)
        except Exception:  # the others stop routing here once the heartbeat is stale
            log.warning("could not announce leaving", exc_info=True)

    def assigned_partitions(self, partitions: frozenset[int], generation: int) -> None:
        """The group's new assignment (called in its rebalance callback: only records it)."""
        self.assigned = dict.fromkeys(partitions, generation)
        self._changes.put_nowait(None)

    def membership_changed(self) -> None:
        self._changes.put_nowait(None)

    def status(self) -> CheckResult:
        waiting = sorted(set(self.assigned) - set(self.held))
        if not self.assigned:
            return False, "no customer-features partitions assigned yet"
        if waiting:
            return False, f"catching up partitions {waiting}"
        return True, f"holding partitions {sorted(self.held)}"

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changes.get(), ANNOUNCE_SECONDS)
            try:
                await self._reconcile()
                await self._announce()
            except asyncio.CancelledError:
                raise
            except Exception:  # never stop: log and go on at the next change or heartbeat
                log.exception("sharding step failed; retrying")

    async def _reconcile(self) -> None:
        for partition, generation in self.assigned.items():
            if partition in self.held:
                self.held[partition] = max(self.held[partition], generation)
            elif partition not in self.readers:
                await self._read(partition)
        # Not assigned any more: a partition still catching up is dropped at once; a held one
        # once its new owner announced it.
        abandoned = {p for p in self.readers if p not in self.assigned and p not in self.held}
        released = self.membership.superseded(self.replica_id, self.held)
        released -= set(self.assigned)
        if abandoned | released:
            await self._drop(abandoned | released)
        if self.assigned and set(self.assigned) <= set(self.held):
            self.caught_up.set()

    async def _read(self, partition: int) -> None:
        readers = self.readers[partition] = [
            TopicReader(
                self.ctx,
                topic,
                handle,
                lag=telemetry.CONSUMER_LAG if topic == "customer-features" else None,
                only=frozenset({partition}),
                on_caught_up=partial(self._reader_caught_up, partition),
            )
            for topic, handle in self.handles.items()
        ]
        for reader in readers:
            await reader.start()
        log.info("catching up a partition", extra={"partition": partition})

    async def _reader_caught_up(self, partition: int) -> None:
        readers = self.readers.get(partition, [])
        if partition not in self.assigned or not all(r.caught_up.is_set() for r in readers):
            return  # the other topic is still behind, or the partition moved on (dropped)
        self.held[partition] = self.assigned[partition]
        log.info("holding a partition", extra={"partition": partition})
        self._changes.put_nowait(None)
        if self.on_held is not None:
            await self.on_held()

    async def _drop(self, partitions: set[int]) -> None:
        for partition in partitions:
            for reader in self.readers.pop(partition, []):
                await reader.stop()
            self.held.pop(partition, None)
        dropped = self.store.drop_partitions(partitions)
        self.on_drop(partitions)
        log.info(
            "let partitions go", extra={"partitions": sorted(partitions), "customers": dropped}
        )

    async def _announce(self) -> None:
        """Announce what changed (a new clock at most once a second), and a heartbeat."""
        partitions = dict(self.held)
        clocks = {tenant: table.clock_us for tenant, table in self.store.tenants.items()}
        owned = {p for p in partitions if self.membership.route(p, self.replica_id) == Local()}
        ltv = self.ltv_sketches(owned)
        last, since = self._announced, time.monotonic() - self._announced_at
        unchanged = last is not None and last.partitions == partitions
        same = last is not None and last.clocks == clocks and last.ltv == ltv
        if unchanged and since < ANNOUNCE_SECONDS and (same or since < 1.0):
            return
        event = ScoringReplica(
            replica_id=self.replica_id, url=self.url, partitions=partitions, clocks=clocks, ltv=ltv
        )
        # Seen by this replica's routing at once, not only once read back.
        self.membership.apply(self.replica_id, event)
        await self.publisher.announce(event)
        self._announced, self._announced_at = event, time.monotonic()
