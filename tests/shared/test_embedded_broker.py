"""The embedded Tansu broker: topics as configured, real produce/consume over TCP, clean stop."""

import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, port_in_use
from retention_shared.kafka import aiokafka_options, ensure_topics
from retention_shared.topics import Topics
from tests.kafka_reading import read_until


async def test_topics_exist_with_the_configured_partitions(kafka: EmbeddedBroker) -> None:
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"p{uuid.uuid4().hex[:6]}.",
        topic_partitions=3,
    )
    created = await ensure_topics(settings)
    topics = Topics.with_prefix(settings.topic_prefix)
    assert sorted(created) == sorted(spec.name for spec in topics.specs())
    assert await ensure_topics(settings) == []  # idempotent
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([topics.transactions, topics.customer_features])
    finally:
        await admin.close()
    assert [len(topic["partitions"]) for topic in described] == [3, 3]


async def test_messages_travel_over_tcp_by_key(kafka_settings: Settings) -> None:
    topic = Topics.with_prefix(kafka_settings.topic_prefix).transactions
    producer = AIOKafkaProducer(**aiokafka_options(kafka_settings))
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i % 3}".encode())
            for i in range(30)
        ]
    finally:
        await producer.stop()
    records = await read_until(kafka_settings, topic, lambda got: len(got) >= 30)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(30))
    # One key, one partition: a customer's events stay in order.
    partitions_by_key = {}
    for i, metadata in enumerate(sent):
        partitions_by_key.setdefault(i % 3, set()).add(metadata.partition)
    assert all(len(p) == 1 for p in partitions_by_key.values())


def test_start_and_stop_free_the_port() -> None:
    broker = EmbeddedBroker(Settings(), output=None).start()
    assert port_in_use(broker.port)
    broker.stop()
    assert broker.process is not None and broker.process.returncode is not None
    assert not port_in_use(broker.port)


def test_a_taken_port_is_reported_not_shared(kafka: EmbeddedBroker) -> None:
    try:
        EmbeddedBroker(Settings(), port=kafka.port).start()
    except RuntimeError as error:
        assert "already in use" in str(error)
    else:
        raise AssertionError("a second broker on a taken port must not start")
