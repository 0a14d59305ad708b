"""Which `customer-features` partitions this instance announces score changes for.

Every instance reads every topic whole (it must answer for any customer), but a change must be
announced once, not once per instance. So the instances also join one consumer group on
`customer-features`, only to split its partitions between them: the member never fetches (its
partitions stay paused). An instance publishes `CustomerScore` for the customers whose vectors
are in the partitions it owns, and `DriftDetected` if it owns partition 0 (the lead). When the
assignment changes, `on_change` runs (a full re-score: a new owner announces what the previous
one had not yet). During a rebalance an instance owns nothing, so a change may wait for it, and
a change being published as ownership moves can still go out twice.

A `GroupConsumer` of the Kafka kit that applies nothing: polling keeps the membership alive,
the kit's rebalance handling says what is owned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import TopicPartition

from retention_shared.kafka.group_consumer import Batches, GroupConsumer
from retention_shared.service import ServiceContext

log = logging.getLogger(__name__)

GROUP_ID = "retention-scoring.publishers"


class PublishingDuty(GroupConsumer):
    publishes = False
    poll_timeout_ms = 1000

    def __init__(
        self,
        ctx: ServiceContext,
        on_change: Callable[[], None] = lambda: None,
        on_assigned: Callable[[frozenset[int], int], None] | None = None,
    ) -> None:
        super().__init__(ctx, ["customer-features"], GROUP_ID, max_batch=1)
        self.on_change = on_change
        # Sharded scoring: the partitions assigned and the group generation they came in.
        self.on_assigned = on_assigned
        self.owned_partitions: frozenset[int] = frozenset()

    def owns(self, partition: int) -> bool:
        return partition in self.owned_partitions

    def lead(self) -> bool:
        return 0 in self.owned_partitions

    def generation(self) -> int:
        """The group generation of the current assignment (aiokafka keeps it on its
        coordinator; each rebalance raises it)."""
        coordinator = getattr(self.consumer, "_coordinator", None)
        return int(getattr(coordinator, "generation", 0) or 0)

    def partition_count(self) -> int | None:
        """Partitions of `customer-features` as the group's metadata says (None: not known yet)."""
        try:
            topic = self.ctx.topic_to_consume("customer-features")
            partitions = self.consumer.partitions_for_topic(topic)
        except Exception:  # not started yet
            return None
        return len(partitions) if partitions else None

    async def handle(self, batches: Batches) -> None:
        """Never called: the partitions are paused, and no position is kept for them."""

    async def assign(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.consumer.pause(*tps)
        self.owned_partitions = frozenset(tp.partition for tp in tps)
        log.info("announcing score changes", extra={"partitions": sorted(self.owned_partitions)})
        if self.on_assigned is not None:
            self.on_assigned(self.owned_partitions, self.generation())
        self.on_change()
        return {}

    async def revoke(self, tps: list[TopicPartition]) -> None:
        self.owned_partitions = frozenset()
