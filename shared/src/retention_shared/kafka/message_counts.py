"""Counting what goes through Kafka: one metric family, one helper every consumer and publisher
uses.

`retention_messages_total{service, topic, direction, outcome}`: `direction` is `consumed` or
`published`; a consumed record is `ok` or `rejected` (sent to `transactions.rejected`, or
dropped with a log line where the topic is not the project's). `retention_poison_records_total`
counts the records a consumer failed on `poison_max_attempts` times and dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter

__all__ = ["MESSAGES", "POISON_RECORDS", "MessageCounts"]

MESSAGES = Counter(
    "retention_messages_total",
    "Kafka messages handled: direction is consumed or published; outcome ok, rejected or error.",
    ["service", "topic", "direction", "outcome"],
)
POISON_RECORDS = Counter(
    "retention_poison_records_total",
    "Records a consumer failed on poison_max_attempts times and sent to the dead-letter path.",
    ["service", "topic"],
)


@dataclass(frozen=True)
class MessageCounts:
    """One service's counts; topics are the names as consumed or published (with the prefix)."""

    service: str

    def consumed(self, topic: str, ok: int = 0, rejected: int = 0) -> None:
        if ok:
            MESSAGES.labels(self.service, topic, "consumed", "ok").inc(ok)
        if rejected:
            MESSAGES.labels(self.service, topic, "consumed", "rejected").inc(rejected)

    def published(self, topic: str, count: int = 1) -> None:
        if count:
            MESSAGES.labels(self.service, topic, "published", "ok").inc(count)

    def poison(self, topic: str) -> None:
        POISON_RECORDS.labels(self.service, topic).inc()
