"""Cleaned order events of the real UCI data, made by ingest's own file pipeline."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from aiokafka import AIOKafkaProducer

from retention_ingest.file_ingest import ingest_file
from retention_ingest.order_events import order_event_payloads
from retention_shared.config import Settings
from retention_shared.events import OrderEvent, decode_event
from retention_shared.features import orders_frame
from retention_shared.kafka.clients import aiokafka_options
from tests.support.paths import REPO

ONLINE_RETAIL = REPO / "data" / "online_retail.parquet"


@dataclass(frozen=True)
class OrderStream:
    """Events in publishing order: (key, payload) pairs, and the same orders as a feature frame."""

    records: list[tuple[bytes, bytes]]
    orders: pl.DataFrame


def order_stream(path: Path, work_dir: Path, tenant_id: str = "default") -> OrderStream:
    result = ingest_file(path, tenant_id=tenant_id, source="test", work_dir=work_dir)
    events = result.events().collect()
    payloads = order_event_payloads(events)
    keys = [f"{t}:{c}".encode() for t, c in events.select("tenant_id", "customer_id").iter_rows()]
    decoded = [decode_event(OrderEvent, payload) for payload in payloads]
    return OrderStream(list(zip(keys, payloads, strict=True)), orders_frame(decoded))


async def publish(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Send everything with a bare producer, then wait for every acknowledgement."""
    producer = AIOKafkaProducer(
        linger_ms=20, max_batch_size=256 * 1024, **aiokafka_options(settings)
    )
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
