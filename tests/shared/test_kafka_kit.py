"""The Kafka kit's boundaries: aiokafka's internals are touched in one module, services reach
Kafka only through the kit, and every topic a service publishes to or consumes is declared in
`TOPICS` with that service as a producer or consumer (and nothing more is declared for it)."""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from fastapi import FastAPI

from retention_features.app import create_app as features_app
from retention_ingest.app import create_app as ingest_app
from retention_scoring.app import create_app as scoring_app
from retention_shared.config import Settings
from retention_shared.events import CustomerScore, ModelPublished
from retention_shared.kafka.group_consumer import Batches, GroupConsumer
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.kafka.subscribers import subscriber
from retention_shared.service import ServiceContext
from retention_shared.topics import SERVICES, TOPICS, UndeclaredTopic
from retention_trainer.app import create_app as trainer_app
from retention_webhooks.app import create_app as webhooks_app
from tests.support.paths import REPO

KIT = REPO / "shared" / "src" / "retention_shared" / "kafka"
WATERMARKS = KIT / "watermarks.py"
APPS: dict[str, Callable[[Settings], FastAPI]] = {
    "ingest": ingest_app,
    "features": features_app,
    "trainer": trainer_app,
    "scoring": scoring_app,
    "webhooks": webhooks_app,
}
CLIENTS = (AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient, AIOKafkaClient)


def _sources(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py") if ".venv" not in p.parts)


def _aiokafka_private_attributes() -> set[str]:
    """The private attributes aiokafka's clients set or use on themselves (`self._client`, ...)."""
    names: set[str] = set()
    for client in CLIENTS:
        for klass in client.__mro__:
            if not klass.__module__.startswith("aiokafka"):
                continue
            for node in ast.walk(ast.parse(inspect.getsource(klass))):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "self"
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                ):
                    names.add(node.attr)
    return names


def _private_uses(path: Path, private: set[str]) -> list[str]:
    """`<object>._name` where `_name` is one of aiokafka's private attributes and the object is
    not the module's own `self` or `cls` (a class of ours may have a `_client` of its own)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
        ):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
    return found


def test_only_watermarks_touches_aiokafka_internals() -> None:
    private = _aiokafka_private_attributes()
    assert {"_client", "_coordinator", "_fetcher", "_subscription"} <= private
    sources = _sources(REPO / "services", REPO / "shared" / "src", REPO / "bench")
    outside = [
        use for path in sources if path != WATERMARKS for use in _private_uses(path, private)
    ]
    assert not outside, "aiokafka internals outside retention_shared/kafka/watermarks.py:\n" + (
        "\n".join(outside)
    )
    # The scan does find what it looks for: watermarks' own metadata refresh.
    assert any(use.endswith("._client") for use in _private_uses(WATERMARKS, private))


def _calls_and_imports(path: Path) -> list[str]:
    """aiokafka clients imported, and a FastStream broker published or subscribed with directly."""
    found = []
    client_names = {client.__name__ for client in CLIENTS}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiokafka"):
            found += [
                f"{path.relative_to(REPO)}:{node.lineno}: imports {alias.name}"
                for alias in node.names
                if alias.name in client_names
            ]
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"publish", "subscriber"}
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "broker"
        ):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: broker.{node.attr}")
    return found


def test_services_reach_kafka_only_through_the_kit() -> None:
    """So the kit sees (and checks against `TOPICS`) every topic a service uses."""
    sources = _sources(REPO / "services", REPO / "shared" / "src")
    direct = [
        use for path in sources if KIT not in path.parents for use in _calls_and_imports(path)
    ]
    assert not direct, "Kafka used outside retention_shared.kafka:\n" + "\n".join(direct)


@pytest.mark.parametrize("service", sorted(APPS))
def test_a_service_uses_exactly_the_topics_declared_for_it(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a service wires every publisher and consumer it has (nothing connects): each
    resolved its topic through the kit, which refuses one `TOPICS` does not declare for the
    service. Here: nothing declared for the service goes unused either."""
    assert set(APPS) == set(SERVICES)
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    # Scoring wires `scoring-replicas` (and its shard readers) only when sharded: both modes
    # together use every topic declared for it.
    modes: list[dict[str, object]] = (
        [{}, {"scoring_sharded": True}] if service == "scoring" else [{}]
    )
    published: set[str] = set()
    consumed: set[str] = set()
    for mode in modes:
        settings = Settings(
            api_keys="k:default:admin",
            kafka_bootstrap="127.0.0.1:1",
            data_dir=tmp_path,
            **mode,  # type: ignore[arg-type]
        )
        ctx: ServiceContext = APPS[service](settings).state.ctx
        published |= ctx.published
        consumed |= ctx.consumed
    assert published == {t.name for t in TOPICS if service in t.producers}
    assert consumed == {t.name for t in TOPICS if service in t.consumers}


class _Nothing(GroupConsumer):
    async def handle(self, batches: Batches) -> None:
        raise AssertionError("not started")


def test_the_kit_refuses_a_topic_not_declared_for_the_service() -> None:
    ctx = ServiceContext.create("webhooks", Settings())
    with pytest.raises(UndeclaredTopic, match="webhooks is not declared as a producer"):
        TopicPublisher(ctx, "customer-scores")
    with pytest.raises(UndeclaredTopic, match="webhooks is not declared as a consumer"):
        _Nothing(ctx, ["transactions"], "g", max_batch=1)
    with pytest.raises(UndeclaredTopic, match="no topic 'customer-score'"):
        _Nothing(ctx, ["customer-score"], "g", max_batch=1)
    assert ctx.published == ctx.consumed == set()


def test_a_publisher_refuses_an_event_its_topic_does_not_carry() -> None:
    ctx = ServiceContext.create("scoring", Settings(topic_prefix="p."))
    scores = TopicPublisher(ctx, "customer-scores")
    assert scores.name == "p.customer-scores" and ctx.published == {"customer-scores"}
    event = ModelPublished.model_construct(tenant_id="acme")
    with pytest.raises(TypeError, match="customer-scores does not carry ModelPublished"):
        asyncio.run(scores.publish(event, key=b"acme"))
    assert CustomerScore in scores.declaration.events


def test_consumer_groups_are_prefixed_like_the_topics() -> None:
    """Two deployments on one Kafka cluster (different `topic_prefix`) never share a consumer
    group: the kit prefixes every group id, of group consumers and of subscribers alike."""
    ctx = ServiceContext.create("trainer", Settings(topic_prefix="acme."))
    consumer = _Nothing(ctx, ["transactions"], "retention-trainer.lake", max_batch=1)

    @subscriber(ctx, "retrain-requests", group_id="retention-trainer.triggers")
    async def handle(body: bytes) -> None:
        raise AssertionError("not started")

    assert consumer.group_id == "acme.retention-trainer.lake"
    assert [s.group_id for s in ctx.broker.subscribers] == ["acme.retention-trainer.triggers"]
    unprefixed = ServiceContext.create("trainer", Settings())
    assert _Nothing(unprefixed, ["transactions"], "g", max_batch=1).group_id == "g"
