"""Which `customer-features` partitions this instance announces score changes for.

Every instance reads every topic whole (it must answer for any customer), but a change must be
announced once, not once per instance. So the instances also join one consumer group on
`customer-features`, only to split its partitions between them: the member never fetches (its
partitions stay paused). An instance publishes `CustomerScore` for the customers whose vectors
are in the partitions it owns, and `DriftDetected` if it owns partition 0 (the lead). When the
assignment changes, `on_change` runs (a full re-score: a new owner announces what the previous
one had not yet). During a rebalance an instance owns nothing, so a change may wait for it, and
a change being published as ownership moves can still go out twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from retention_shared.config import Settings
from retention_shared.kafka import aiokafka_options
from retention_shared.tasks import cancel

log = logging.getLogger(__name__)

GROUP_ID = "retention-scoring.publishers"


@dataclass
class PublishingDuty:
    settings: Settings
    topic: str
    on_change: Callable[[], None] = lambda: None
    owned: frozenset[int] = frozenset()
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def owns(self, partition: int) -> bool:
        return partition in self.owned

    def lead(self) -> bool:
        return 0 in self.owned

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=GROUP_ID, enable_auto_commit=False, **aiokafka_options(self.settings)
        )
        self._consumer.subscribe([self.topic], listener=_Assignment(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="publishing duty")

    async def stop(self) -> None:
        await cancel([self._task])
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group: the others take the partitions over

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                # Polling keeps the membership alive; the paused partitions return nothing.
                await self._consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("publishing duty: polling failed; retrying")
                await asyncio.sleep(1.0)

    def _assigned(self, partitions: list[TopicPartition]) -> None:
        assert self._consumer is not None
        self._consumer.pause(*partitions)
        self.owned = frozenset(tp.partition for tp in partitions)
        log.info("announcing score changes", extra={"partitions": sorted(self.owned)})
        self.on_change()


class _Assignment(ConsumerRebalanceListener):
    def __init__(self, duty: PublishingDuty) -> None:
        self.duty = duty

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.duty.owned = frozenset()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.duty._assigned(list(assigned))
