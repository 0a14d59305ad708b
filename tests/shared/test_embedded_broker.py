"""The embedded Tansu broker: topics as configured, real produce/consume over TCP, clean stop,
and a log that survives a restart on S3 storage (moto's S3 server)."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from retention_shared.config import Settings
from retention_shared.embedded_broker import EmbeddedBroker, port_in_use
from retention_shared.kafka.clients import aiokafka_options, ensure_topics
from retention_shared.topics import Topics
from tests.support.kafka_reading import read_until
from tests.support.moto_s3 import client as s3_client
from tests.support.moto_s3 import moto_s3, new_bucket


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


async def _produce(settings: Settings, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(acks="all", **aiokafka_options(settings))
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"kept-{i}".encode(), key=f"k{i % 4}".encode())
    finally:
        await producer.stop()


async def _committed(settings: Settings, topic: str, offset: int | None = None) -> int | None:
    """The offset group `g` committed on partition 0 (committing `offset` first, if given)."""
    consumer = AIOKafkaConsumer(
        group_id="g", enable_auto_commit=False, **aiokafka_options(settings)
    )
    partition = TopicPartition(topic, 0)
    await consumer.start()
    consumer.assign([partition])
    try:
        if offset is not None:
            await consumer.commit({partition: OffsetAndMetadata(offset, "")})
        return await consumer.committed(partition)
    finally:
        await consumer.stop()


def test_s3_storage_keeps_the_log_and_offsets_across_a_killed_broker() -> None:
    with moto_s3() as endpoint:
        bucket = new_bucket(endpoint)
        settings = Settings(
            s3_endpoint_url=endpoint, broker_storage=f"s3://{bucket}/", topic_partitions=2
        )
        first = EmbeddedBroker(settings, storage_engine=settings.broker_storage).start()
        assert first.durable and first.storage == f"s3://{bucket}/"
        topic = Topics.with_prefix("").transactions
        try:
            asyncio.run(_produce(first.settings, topic, 20))
            assert asyncio.run(_committed(first.settings, topic, offset=7)) == 7
        finally:
            assert first.process is not None
            first.process.kill()  # no graceful stop: what was acknowledged must be in the bucket
            first.process.wait()
        assert s3_client(endpoint).list_objects_v2(Bucket=bucket)["KeyCount"] > 0

        second = EmbeddedBroker(settings, port=first.port, storage_engine=settings.broker_storage)
        with second:
            records = asyncio.run(
                read_until(second.settings, topic, lambda got: len(got) >= 20, timeout=60)
            )
            assert asyncio.run(_committed(second.settings, topic)) == 7
    assert sorted(r.value for r in records) == sorted(f"kept-{i}".encode() for i in range(20))


def test_in_memory_is_the_default_and_says_so() -> None:
    broker = EmbeddedBroker(Settings())
    assert not broker.durable
    assert "--storage-engine" in broker.command()
    assert broker.command()[-1] == "memory://tansu/"


def test_storage_tansu_refuses_is_refused_by_the_setting() -> None:
    for refused in ("sqlite://broker.db", "file:///tmp/broker"):
        with pytest.raises(ValidationError, match="s3://bucket/ or postgres://"):
            Settings(broker_storage=refused)
    assert Settings(broker_storage="postgres://u:secret@db/tansu").broker_storage
    assert EmbeddedBroker(Settings(), storage_engine="postgres://u:secret@db/tansu").storage == (
        "postgres://db/tansu"
    )


def test_the_s3_endpoint_setting_reaches_tansu_as_aws_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ENDPOINT", "AWS_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(s3_endpoint_url="http://127.0.0.1:9000")
    env = EmbeddedBroker(settings, storage_engine="s3://logs/").environment()
    assert env["AWS_ENDPOINT"] == "http://127.0.0.1:9000"
    assert env["AWS_ALLOW_HTTP"] == "true"  # object_store refuses plain HTTP otherwise
    assert "AWS_ENDPOINT" not in EmbeddedBroker(settings).environment()  # in memory: no S3
