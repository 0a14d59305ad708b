"""Reading topics back in tests, the way a CRM subscriber or an operator would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from retention_shared.config import Settings
from retention_shared.kafka.clients import aiokafka_options


async def read_until(
    settings: Settings,
    topic: str,
    done: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 90.0,  # a deadline, not a wait: 45k records took > 30 s at load 10+
) -> list[ConsumerRecord]:
    """All records of `topic` from the beginning, until `done(records)` or the timeout."""
    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **aiokafka_options(settings))
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(records):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: condition not met after {timeout}s ({len(records)} records)"
                )
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records
