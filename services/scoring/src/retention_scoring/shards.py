"""Who serves which customers when scoring is sharded: the routing decisions, without I/O.

Replicas announce `ScoringReplica` on `scoring-replicas`: the `customer-features` partitions
each one has materialized, with the consumer-group generation it was assigned each in. The owner
of a partition is the replica announcing it with the highest generation (ties: the smallest
replica id, so every replica decides alike). A replica that lost a partition in a rebalance
keeps announcing it under its old generation until the new owner announced it under a newer
one: until then it is still the owner, so every customer has an answer throughout. A replica
re-announces every few seconds; one not heard of for `ttl_seconds` (it crashed without its
tombstone) owns nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from retention_scoring.scoring import TierCutoffs
from retention_scoring.tiers import merged_cutoffs
from retention_shared.events import LtvSketch, ScoringReplica
from retention_shared.kafka.partitioning import partition_for
from retention_shared.topics import customer_key

__all__ = ["Forward", "Local", "Membership", "NoOwner", "Route", "customer_partition"]


def customer_partition(tenant_id: str, customer_id: str, partitions: int) -> int:
    """The `customer-features` partition of a customer, as the features service's producer
    chooses it (the `tenant:customer` key, the default partitioner)."""
    return partition_for(customer_key(tenant_id, customer_id), partitions)


@dataclass(frozen=True)
class Local:
    """This replica answers."""


@dataclass(frozen=True)
class Forward:
    replica_id: str
    url: str


@dataclass(frozen=True)
class NoOwner:
    """No replica serves the partition yet (it is being caught up)."""

    partition: int


Route = Local | Forward | NoOwner


@dataclass
class Membership:
    """The latest announcement of every live replica, this one's own included."""

    replicas: dict[str, ScoringReplica] = field(default_factory=dict)
    ttl_seconds: float = 30.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _cutoffs: dict[tuple[str, str, int], tuple[list[LtvSketch], TierCutoffs | None]] = field(
        default_factory=dict
    )

    def apply(self, replica_id: str, announcement: ScoringReplica | None) -> None:
        """An announcement, or None for a replica that stopped (its tombstone)."""
        if announcement is None:
            self.replicas.pop(replica_id, None)
        else:
            self.replicas[replica_id] = announcement

    def live(self) -> list[ScoringReplica]:
        """The replicas heard of within `ttl_seconds`."""
        since = self.now() - timedelta(seconds=self.ttl_seconds)
        return [r for r in self.replicas.values() if r.announced_at >= since]

    def owner(self, partition: int) -> ScoringReplica | None:
        holders = [r for r in self.live() if partition in r.partitions]
        if not holders:
            return None
        return min(holders, key=lambda r: (-r.partitions[partition], r.replica_id))

    def route(self, partition: int, me: str) -> Route:
        owner = self.owner(partition)
        if owner is None:
            return NoOwner(partition)
        if owner.replica_id == me:
            return Local()
        return Forward(owner.replica_id, owner.url)

    def superseded(self, me: str, held: dict[int, int]) -> set[int]:
        """The partitions this replica holds that another replica now owns: to let go."""
        return {p for p in held if (owner := self.owner(p)) is not None and owner.replica_id != me}

    def plan(self, partitions: Iterable[int]) -> tuple[dict[str, list[int]], list[int]]:
        """Which replica answers for which of `partitions` (a gather asks each for exactly its
        share, so a partition two replicas hold during a rebalance is counted once), and the
        partitions nobody serves."""
        shares: dict[str, list[int]] = {}
        missing: list[int] = []
        for partition in sorted(partitions):
            owner = self.owner(partition)
            if owner is None:
                missing.append(partition)
            else:
                shares.setdefault(owner.replica_id, []).append(partition)
        return shares, missing

    def url(self, replica_id: str) -> str | None:
        replica = self.replicas.get(replica_id)
        return replica.url if replica is not None else None

    def clock(self, tenant_id: str) -> int:
        """The tenant's latest vector time over every replica (0: none announced)."""
        return max((r.clocks.get(tenant_id, 0) for r in self.live()), default=0)

    def cutoffs(self, tenant_id: str, model_version: str, partitions: int) -> TierCutoffs | None:
        """The tenant's value-tier cutoffs under `model_version`, merged over the live replicas'
        LTV sketches (None until they cover every partition once)."""
        sketches = [
            sketch
            for r in self.live()
            if (sketch := r.ltv.get(tenant_id)) is not None
            and sketch.model_version == model_version
        ]
        # Merging costs milliseconds (a re-expanded sample); asked on every request, it is
        # recomputed only when a sketch changed (equal sketches compare equal when re-announced).
        key = (tenant_id, model_version, partitions)
        cached = self._cutoffs.get(key)
        if cached is not None and cached[0] == sketches:
            return cached[1]
        cutoffs = merged_cutoffs(sketches, partitions)
        self._cutoffs[key] = (sketches, cutoffs)
        return cutoffs
