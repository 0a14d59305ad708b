"""Kafka clients from settings: the FastStream broker, raw aiokafka clients, the topics.

Every client the services open is built here, so connection and security options (TLS, SASL),
acknowledgements and the idempotent producer setting (off for the embedded broker, which lacks
it) are decided once.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
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
    """Connection keyword arguments for raw aiokafka clients."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        **parse_security(kafka_security(settings)),
    }


def make_consumer(
    settings: Settings, group_id: str | None = None, **options: Any
) -> AIOKafkaConsumer:
    """A raw consumer that commits only what it is told to (auto commit off), from the earliest
    offset unless `options` say otherwise; `group_id` None: partitions are assigned by hand."""
    return AIOKafkaConsumer(
        group_id=group_id,
        enable_auto_commit=False,
        **{"auto_offset_reset": "earliest", **options},
        **aiokafka_options(settings),
    )


def make_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """A raw producer waiting for every replica (acks=all), idempotent where the setting says
    so (real Kafka; the embedded broker lacks InitProducerId)."""
    return AIOKafkaProducer(
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        **options,
        **aiokafka_options(settings),
    )


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
