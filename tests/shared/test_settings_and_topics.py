import pytest
from pydantic import ValidationError

from retention_shared.config import Settings
from retention_shared.topics import Topics, customer_key


def test_settings_come_from_retention_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_KAFKA_BOOTSTRAP", "kafka-0:9093,kafka-1:9093")
    monkeypatch.setenv("RETENTION_TOPIC_PREFIX", "acme.")
    monkeypatch.setenv("RETENTION_SCORING_PORT", "9000")
    monkeypatch.setenv("RETENTION_KAFKA_IDEMPOTENT_PRODUCER", "true")
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka-0:9093,kafka-1:9093"
    assert settings.port_of("scoring") == 9000
    assert settings.kafka_idempotent_producer is True
    assert Topics.with_prefix(settings.topic_prefix).transactions == "acme.transactions"


def test_defaults_suit_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "RETENTION_KAFKA_BOOTSTRAP",
        "RETENTION_TOPIC_PREFIX",
        "RETENTION_KAFKA_IDEMPOTENT_PRODUCER",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.kafka_idempotent_producer is False  # Tansu lacks InitProducerId
    assert settings.topic_partitions == 6
    assert [settings.port_of(s) for s in ("scoring", "ingest", "features", "trainer")] == [
        8000,
        8001,
        8002,
        8003,
    ]


def test_a_prefix_that_cannot_be_part_of_a_topic_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="topic_prefix"):
        Settings(topic_prefix="acme/")


def test_the_per_customer_latest_topics_are_compacted() -> None:
    """customer-features and customer-scores keep the latest record per customer, so an erased
    customer's tombstone removes every earlier one (scoring-replicas: the latest announcement
    per replica); the rest keep history."""
    specs = {spec.name: spec for spec in Topics.with_prefix("p.").specs()}
    assert len(specs) == 12
    compacted = {"p.customer-features", "p.customer-scores", "p.scoring-replicas"}
    assert {name for name, spec in specs.items() if spec.compacted} == compacted
    assert all(specs[name].configs == {"cleanup.policy": "compact"} for name in compacted)
    assert {"p.customer-erasures", "p.erasure-audit"} <= specs.keys()


def test_customer_key_keeps_tenant_and_customer() -> None:
    assert customer_key("acme", "17850") == b"acme:17850"
