"""What the scoring service holds in memory, and the one way requests reach a scored population."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from retention_scoring.champions import Champions, LoadedChampion
from retention_scoring.comparison import Comparisons
from retention_scoring.errors import ScoringUnavailable
from retention_scoring.population import Population, Populations
from retention_scoring.score_history import ScoreHistory
from retention_scoring.shards import Membership, customer_partition
from retention_scoring.store import FeatureStore, TenantTable, to_microseconds
from retention_shared.config import ClockMode, Settings

__all__ = ["DriftStatus", "ScoringState", "Sharding", "tenant_clock"]

MINUTE_US = 60_000_000


@dataclass
class DriftStatus:
    model_version: str
    checked_at: datetime
    psi: dict[str, float]
    threshold: float
    drifted: list[str]
    published_at: datetime | None = None


def tenant_clock(
    settings: Settings, elsewhere: Callable[[str], int] | None = None
) -> Callable[[TenantTable], int]:
    """ "Now" for a tenant: its latest vector's as_of, or wall time floored to the minute.

    Flooring keeps a wall-clock population valid for a minute (recency moves in days). A sharded
    replica holds a share of the tenant's vectors: `elsewhere` is the latest as_of the other
    replicas announced, so every replica scores at the same clock.
    """

    def clock(table: TenantTable) -> int:
        latest = table.clock_us
        if elsewhere is not None:
            latest = max(latest, elsewhere(table.tenant_id))
        if settings.clock is ClockMode.WALL:
            now = to_microseconds(datetime.now(UTC))
            return max(now - now % MINUTE_US, latest)
        return latest

    return clock


@dataclass
class Sharding:
    """What the routes of a sharded replica need: who it is, who serves what, what it holds."""

    replica_id: str
    membership: Membership
    held: Callable[[], dict[int, int]]
    partition_count: Callable[[], int]

    def partition_of(self, tenant_id: str, customer_id: str) -> int:
        return customer_partition(tenant_id, customer_id, self.partition_count())


@dataclass
class ScoringState:
    settings: Settings
    store: FeatureStore
    champions: Champions
    populations: Populations
    drift: dict[str, DriftStatus] = field(default_factory=dict)
    # Each customer's recent score changes, as read back from `customer-scores`.
    history: ScoreHistory = field(default_factory=ScoreHistory)
    # Sharded scoring: who serves which partition (None: this replica holds every customer).
    sharding: Sharding | None = None
    # The population scored by the previous champion (insights).
    comparisons: Comparisons = field(init=False)

    def __post_init__(self) -> None:
        self.comparisons = Comparisons(self.champions.previous)

    def champion(self, tenant_id: str) -> LoadedChampion:
        champion = self.champions.get(tenant_id)
        if champion is None:
            problem = self.champions.problems.get(tenant_id)
            raise ScoringUnavailable(
                problem
                or "no champion model for this tenant yet: train one (the trainer "
                "publishes ModelPublished on model-events when a model passes its backtest)"
            )
        return champion

    async def population(self, tenant_id: str) -> Population | None:
        """The tenant's population scored at its clock; None when it has no customers yet.

        Raises ScoringUnavailable without a champion.
        """
        champion = self.champion(tenant_id)
        table = self.store.table(tenant_id)
        if table is None or len(table) == 0:
            return None
        return await self.populations.get(table, champion)
