"""`scoring-replicas` → the membership table a sharded replica routes by (the topic read whole:
the latest announcement of each replica, a tombstone for one that stopped)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from retention_scoring.shards import Membership
from retention_shared.events import EventDecodeError, ScoringReplica, decode_event

log = logging.getLogger(__name__)


@dataclass
class ReplicasConsumer:
    membership: Membership
    on_change: Callable[[], None]

    async def handle(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            replica_id = (record.key or b"").decode("utf-8", errors="replace")
            if record.value is None:
                self.membership.apply(replica_id, None)
                continue
            try:
                self.membership.apply(replica_id, decode_event(ScoringReplica, record.value))
            except EventDecodeError as exc:  # only scoring writes here: log, do not route by it
                log.warning("unreadable replica announcement", extra={"detail": str(exc)})
        self.on_change()
