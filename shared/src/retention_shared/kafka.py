"""Kafka clients from settings: the FastStream broker, raw aiokafka connection options, topics."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from retention_shared.config import SaslMechanism, SecurityProtocol, Settings
from retention_shared.topics import Topics, TopicSpec

log = logging.getLogger(__name__)

# Kafka's error code when the topic is already there: creating topics is idempotent for us.
TOPIC_ALREADY_EXISTS = 36


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """TLS and/or SASL from settings, in FastStream's terms (None for plain TCP)."""
    protocol = settings.kafka_security_protocol
    if protocol is SecurityProtocol.PLAINTEXT:
        return None
    use_tls = protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)
    context = _ssl_context(settings) if use_tls else None
    if protocol is SecurityProtocol.SSL:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise ValueError(
            "RETENTION_KAFKA_SASL_USERNAME and RETENTION_KAFKA_SASL_PASSWORD are required "
            f"with RETENTION_KAFKA_SECURITY_PROTOCOL={protocol.value}"
        )
    sasl_class = {
        SaslMechanism.PLAIN: SASLPlaintext,
        SaslMechanism.SCRAM_SHA_256: SASLScram256,
        SaslMechanism.SCRAM_SHA_512: SASLScram512,
    }[settings.kafka_sasl_mechanism]
    return sasl_class(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=use_tls,
    )


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments for raw aiokafka clients (consumers that manage offsets)."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        **parse_security(kafka_security(settings)),
    }


def make_broker(settings: Settings, client_id: str) -> KafkaBroker:
    """The FastStream broker a service publishes and subscribes with."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        security=kafka_security(settings),
        enable_idempotence=settings.kafka_idempotent_producer,
        acks="all",
        allow_auto_create_topics=False,
        logger=logging.getLogger(f"retention.{client_id}.broker"),
    )


async def broker_answers(settings: Settings) -> None:
    """Raises unless the bootstrap servers answer; leaves no client open either way.

    FastStream's broker leaks its producer when its start fails (aiokafka then logs "Unclosed
    AIOKafkaProducer" at error level), so a service only starts it once this passed."""
    client = AIOKafkaClient(**aiokafka_options(settings))
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the project's topics if missing; returns the names it created."""
    specs = specs if specs is not None else Topics.with_prefix(settings.topic_prefix).specs()
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    settings.topic_partitions,
                    settings.topic_replication_factor,
                    topic_configs=spec.configs,
                )
                for spec in specs
            ]
        )
    finally:
        await admin.close()
    created = []
    for name, code, message in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code != TOPIC_ALREADY_EXISTS:
            raise RuntimeError(f"could not create topic {name}: error {code} {message}")
    if created:
        log.info("created topics", extra={"topics": created})
    return created


class BulkProducer:
    """A raw aiokafka producer for hot paths: send many records, then await every acknowledgement.

    Batched with a short linger; `send_all` returns only when the broker acknowledged all of them
    and raises if any was not (or not within `timeout` seconds).
    """

    def __init__(self, settings: Settings, timeout: float = 15.0, linger_ms: int = 5) -> None:
        self.settings = settings
        self.timeout = timeout
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=self.settings.kafka_idempotent_producer,
            linger_ms=self.linger_ms,
            max_batch_size=512 * 1024,
            request_timeout_ms=int(self.timeout * 1000),
            **aiokafka_options(self.settings),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # a failed start leaves it open ("Unclosed AIOKafkaProducer")
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send_all(self, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        if self._producer is None:
            raise RuntimeError("not connected to the broker yet")
        async with asyncio.timeout(self.timeout):
            pending = [await self._producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*pending)
        return len(pending)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, sorted. A fresh client may not have the topic's metadata
    yet: it is asked for again, five seconds at most."""
    for _ in range(50):
        if found := consumer.partitions_for_topic(topic):
            return [TopicPartition(topic, p) for p in sorted(found)]
        await consumer._client.force_metadata_update()  # no public way to ask for metadata
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")
