"""Topic names (with the configured prefix) and how each topic is created."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False

    @property
    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": "compact"} if self.compacted else {}


@dataclass(frozen=True)
class Topics:
    """Every topic in ARCHITECTURE.md, "Events"; build with `Topics.with_prefix(settings.topic_prefix)`."""

    orders_raw: str
    transactions: str
    transactions_rejected: str
    customer_features: str
    customer_scores: str
    model_events: str
    drift_events: str
    retrain_requests: str
    customer_erasures: str
    erasure_audit: str
    upload_events: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> Topics:
        return cls(
            orders_raw=f"{prefix}orders.raw",
            transactions=f"{prefix}transactions",
            transactions_rejected=f"{prefix}transactions.rejected",
            customer_features=f"{prefix}customer-features",
            customer_scores=f"{prefix}customer-scores",
            model_events=f"{prefix}model-events",
            drift_events=f"{prefix}drift-events",
            retrain_requests=f"{prefix}retrain-requests",
            customer_erasures=f"{prefix}customer-erasures",
            erasure_audit=f"{prefix}erasure-audit",
            upload_events=f"{prefix}upload-events",
        )

    def specs(self) -> list[TopicSpec]:
        # customer-features and customer-scores hold the latest record per customer, so older ones
        # may be compacted away — and an erased customer's tombstone removes them all.
        compacted = {self.customer_features, self.customer_scores}
        return [TopicSpec(name, compacted=(name in compacted)) for name in vars(self).values()]


def customer_key(tenant_id: str, customer_id: str) -> bytes:
    """Message key for per-customer topics: one customer's events stay on one partition, in order."""
    return f"{tenant_id}:{customer_id}".encode()
