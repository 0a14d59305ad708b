"""`model-events` → champions: the last `ModelPublished` per tenant is its champion (every
partition, from the first offset, read by the Kafka kit's `TopicReader`).

While catching up with the topic only the last announcement per tenant is remembered, so a
restart loads one bundle per tenant rather than every model ever published — and the last one
of another version before it, the previous champion, which is loaded only if insights ask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord

from retention_scoring.champions import Champions
from retention_shared.events import (
    EventDecodeError,
    ModelEvent,
    ModelPublished,
    decode_event,
)
from retention_shared.kafka.message_counts import MessageCounts

log = logging.getLogger(__name__)


@dataclass
class ModelEventsConsumer:
    champions: Champions
    counts: MessageCounts
    caught_up: bool = False
    _latest: dict[str, ModelPublished] = field(default_factory=dict)
    _previous: dict[str, ModelPublished] = field(default_factory=dict)

    async def handle(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            try:
                event = decode_event(ModelEvent, record.value)
            except EventDecodeError as error:
                # A few records at most: logged rather than sent to the rejected topic, which
                # carries transactions' dead letters.
                log.warning("unreadable model event", extra={"error": error.message})
                self.counts.consumed(record.topic, rejected=1)
                continue
            self.counts.consumed(record.topic, ok=1)
            if not isinstance(event, ModelPublished):
                log.info("model rejected by the gate", extra={"tenant_id": event.tenant_id})
                continue
            if self.caught_up:
                self.champions.announce(event)
            else:
                latest = self._latest.get(event.tenant_id)
                if latest is not None and latest.model_version != event.model_version:
                    self._previous[event.tenant_id] = latest
                self._latest[event.tenant_id] = event

    async def start_serving(self) -> None:
        """Caught up with the topic: load each tenant's last announced champion."""
        self.caught_up = True
        for event in self._previous.values():
            self.champions.previous.remember(event)
        for event in self._latest.values():
            self.champions.announce(event)
        self._latest.clear()
        self._previous.clear()
