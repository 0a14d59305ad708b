"""Every topic, declared once: its name, key, events, producers, consumers, cleanup and purpose.

`TOPICS` is the one source of truth. `Topics` (the names with the configured prefix, which the
services read as `ctx.topics.<name>`) and `Topics.specs()` (how each topic is created) derive from
it, and so does the AsyncAPI document, `docs/asyncapi.yaml` (`retention_shared.asyncapi`). The
deployments (deploy/k8s/base/topics.yaml, docker-compose's topic-init) are checked against it by
tests/deploy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from retention_shared.events import (
    CustomerErased,
    CustomerErasureRequested,
    CustomerFeatures,
    CustomerScore,
    DriftDetected,
    Event,
    ModelPublished,
    ModelRejected,
    OrderEvent,
    RejectedRecord,
    RetrainRequested,
    ScoringReplica,
    UploadCompleted,
)

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1  # retention.ms for a topic whose whole history is needed again

# The services that publish or subscribe (console only calls the others' HTTP APIs), and the
# parties outside Retention that do.
SERVICES = ("ingest", "features", "trainer", "scoring", "webhooks")
EXTERNAL = {
    "upstream": "an order source outside Retention (shop, ERP, CDC pipeline)",
    "crm": "a CRM or marketing tool subscribed to score changes",
    "ops": "operators and their tools",
}


@dataclass(frozen=True)
class MessageKey:
    """What a topic's record keys hold (UTF-8 text), as integrators read it."""

    name: str
    description: str
    pattern: str | None = None


CUSTOMER_KEY = MessageKey(
    "tenant:customer",
    "`<tenant_id>:<customer_id>`: one customer's records stay on one partition, in order "
    "(the tenant id holds no colon; the customer id may).",
    r"^[^:]+:.+$",
)
TENANT_KEY = MessageKey(
    "tenant", "`<tenant_id>`: one tenant's records stay on one partition, in order.", r"^[^:]+$"
)
SOURCE_KEY = MessageKey(
    "source key", "The key of the record that was rejected, as it came (none for an upload row)."
)
ANY_KEY = MessageKey(
    "any",
    "Whatever the producer chooses; ingest does not read it. `<tenant_id>:<customer_id>` keeps a "
    "customer's orders in order.",
)

REPLICA_KEY = MessageKey(
    "replica", "`<replica_id>`: the latest announcement of one scoring replica stays."
)

# orders.raw carries no event model: each upstream sends its own JSON.
RAW_ORDER_SCHEMA: dict[str, Any] = {
    "title": "RawOrder",
    "type": "object",
    "additionalProperties": True,
    "description": (
        "One order as a JSON object, read with the tenant's saved column mapping, else as a "
        "known public layout, else as the body of `POST /v1/orders` (ingest's OpenAPI). Ingest "
        "cleans it like an upload row; what it cannot read goes to `transactions.rejected` with "
        "a reason."
    ),
}


@dataclass(frozen=True)
class TopicDeclaration:
    name: str  # without the configurable prefix
    key: MessageKey
    # The event models its values are (one topic may carry several, told apart by `event_type`);
    # empty for a topic of raw JSON, described by `raw_schema`.
    events: tuple[type[Event], ...]
    producers: tuple[str, ...]  # SERVICES or EXTERNAL names
    consumers: tuple[str, ...]
    description: str
    compacted: bool = False  # keep the latest record per key (cleanup.policy=compact)
    retention_ms: int | None = None  # how long records are kept; None with compaction
    # When a record with a null value is written (compacted topics: it deletes the key).
    tombstone: str | None = None
    raw_schema: dict[str, Any] | None = None
    # Record headers its consumers read: name → meaning (all required).
    headers: dict[str, str] | None = None

    @property
    def attr(self) -> str:
        """The `Topics` attribute: `orders.raw` → `orders_raw`."""
        return self.name.replace(".", "_").replace("-", "_")

    @property
    def configs(self) -> dict[str, str]:
        """Topic configs that every deployment sets (Strimzi, compose, the embedded broker)."""
        configs = {"cleanup.policy": "compact"} if self.compacted else {}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


TOPICS: tuple[TopicDeclaration, ...] = (
    TopicDeclaration(
        "orders.raw",
        ANY_KEY,
        (),
        producers=("upstream",),
        consumers=("ingest",),
        description="Orders straight from upstream producers, canonical or in the tenant's columns.",
        retention_ms=7 * DAY_MS,
        raw_schema=RAW_ORDER_SCHEMA,
        headers={"tenant": "The tenant the order belongs to; without it: `missing_tenant`."},
    ),
    TopicDeclaration(
        "transactions",
        CUSTOMER_KEY,
        (OrderEvent,),
        producers=("ingest",),
        consumers=("features", "trainer"),
        description=(
            "Every clean order and cancellation, from HTTP, uploads and orders.raw alike. Kept "
            "forever: features and the trainer's lake are rebuilt by replaying it."
        ),
        retention_ms=FOREVER,
    ),
    TopicDeclaration(
        "transactions.rejected",
        SOURCE_KEY,
        (RejectedRecord,),
        producers=("ingest", "features", "trainer", "scoring", "webhooks"),
        consumers=("ops",),
        description=(
            "Inputs that could not become an order, and records a consumer could not read or "
            "kept failing on (dead-lettered), each with its reasons."
        ),
        retention_ms=30 * DAY_MS,
    ),
    TopicDeclaration(
        "customer-features",
        CUSTOMER_KEY,
        (CustomerFeatures,),
        producers=("features",),
        consumers=("scoring",),
        description="Each customer's latest feature vector, published when it changes.",
        compacted=True,
        tombstone="when the customer is erased",
    ),
    TopicDeclaration(
        "customer-scores",
        CUSTOMER_KEY,
        (CustomerScore,),
        producers=("scoring",),
        # scoring reads it back: what was last announced per customer, and the score history.
        consumers=("scoring", "webhooks", "crm"),
        description=(
            "A customer's score when their risk band, value tier or segment changes; `event_id` "
            "is the same for a re-published announcement (drop duplicates by it)."
        ),
        compacted=True,
        tombstone="when the customer is erased",
    ),
    TopicDeclaration(
        "model-events",
        TENANT_KEY,
        (ModelPublished, ModelRejected),
        producers=("trainer",),
        # The trainer reads back what it last announced when it starts.
        consumers=("scoring", "trainer", "webhooks"),
        description="A tenant's new champion model, or a challenger that did not beat it.",
        retention_ms=30 * DAY_MS,
    ),
    TopicDeclaration(
        "drift-events",
        TENANT_KEY,
        (DriftDetected,),
        producers=("scoring", "trainer"),
        consumers=("trainer", "webhooks"),
        description="The champion no longer fits: live features moved away from its training "
        "distributions (scoring), or its realized churn ROC-AUC fell below its backtest's "
        "(trainer).",
        retention_ms=30 * DAY_MS,
    ),
    TopicDeclaration(
        "retrain-requests",
        TENANT_KEY,
        (RetrainRequested,),
        producers=("ingest", "ops"),
        consumers=("trainer",),
        description="Ask the trainer to train a tenant's model (after an upload, or by hand).",
        retention_ms=7 * DAY_MS,
    ),
    TopicDeclaration(
        "customer-erasures",
        CUSTOMER_KEY,
        (CustomerErasureRequested,),
        producers=("scoring",),
        consumers=("ingest", "features", "trainer", "scoring", "webhooks"),
        description=(
            "An admin's request to forget a customer. Kept as long as transactions: a service "
            "that lost its state reads every erasure again before a replay."
        ),
        retention_ms=FOREVER,
    ),
    TopicDeclaration(
        "erasure-audit",
        TENANT_KEY,
        (CustomerErased,),
        producers=("ingest", "features", "trainer", "scoring", "webhooks"),
        consumers=("scoring",),
        description="Each service's confirmation of an erasure: the audit trail, never a customer id.",
        retention_ms=FOREVER,
    ),
    TopicDeclaration(
        "upload-events",
        TENANT_KEY,
        (UploadCompleted,),
        producers=("ingest",),
        consumers=("webhooks",),
        description="An uploaded file was read to its end and its orders published.",
        retention_ms=30 * DAY_MS,
    ),
    TopicDeclaration(
        "scoring-replicas",
        REPLICA_KEY,
        (ScoringReplica,),
        producers=("scoring",),
        consumers=("scoring",),
        description=(
            "Sharded scoring replicas (RETENTION_SCORING_SHARDED): which customer-features "
            "partitions each one serves, and where; a replica routes a request to the owner."
        ),
        compacted=True,
        tombstone="when the replica stops",
    ),
)


@dataclass(frozen=True)
class TopicSpec:
    """A declared topic under its prefixed name: what creating it takes."""

    name: str
    declaration: TopicDeclaration

    @property
    def compacted(self) -> bool:
        return self.declaration.compacted

    @property
    def configs(self) -> dict[str, str]:
        return self.declaration.configs


@dataclass(frozen=True)
class Topics:
    """The name of every declared topic (`TOPICS`) with the configured prefix; build with
    `Topics.with_prefix(settings.topic_prefix)`."""

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
    scoring_replicas: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> Topics:
        return cls(**{topic.attr: f"{prefix}{topic.name}" for topic in TOPICS})

    def specs(self) -> list[TopicSpec]:
        """How to create every topic: its name here and the declaration's configs."""
        return [TopicSpec(getattr(self, t.attr), t) for t in TOPICS]


# The attributes are written out for readers and type checkers; they must be the declaration's.
assert [f.name for f in fields(Topics)] == [t.attr for t in TOPICS], "Topics ≠ TOPICS"


class UndeclaredTopic(LookupError):
    """A service publishes or consumes a topic that `TOPICS` does not name it for."""


Role = Literal["producer", "consumer"]


def declared_for(service: str, name: str, role: Role) -> TopicDeclaration:
    """The declaration of topic `name` (without prefix), which must name `service` among its
    producers or consumers (`role`); raises UndeclaredTopic otherwise."""
    found = next((topic for topic in TOPICS if topic.name == name), None)
    if found is None:
        raise UndeclaredTopic(f"no topic {name!r} is declared in retention_shared.topics.TOPICS")
    parties = found.producers if role == "producer" else found.consumers
    if service not in parties:
        raise UndeclaredTopic(
            f"{service} is not declared as a {role} of {name} (TOPICS says {', '.join(parties)})"
        )
    return found


def customer_key(tenant_id: str, customer_id: str) -> bytes:
    """Message key for per-customer topics: one customer's events stay on one partition, in order."""
    return f"{tenant_id}:{customer_id}".encode()
