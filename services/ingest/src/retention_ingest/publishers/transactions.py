"""`transactions`: every clean order (`OrderEvent`), keyed `tenant:customer`, from HTTP,
uploads and `orders.raw` alike.

Sent in bulk (the kit's `BulkProducer`, raw aiokafka, batched), waiting for the broker's
acknowledgement of every one: HTTP answers, an upload counts progress and an `orders.raw`
record is committed only after that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiokafka.errors import MessageSizeTooLargeError

from retention_ingest import telemetry
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.publisher import TopicPublisher
from retention_shared.service import ServiceContext

# aiokafka refuses records above its max_request_size (1 MiB); leave room for the batch header.
MAX_EVENT_BYTES = 1_000_000


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge in time; the caller answers 503 and the client retries."""


class MessageTooLarge(ValueError):
    """An event is larger than the broker takes: no retry can help, so the caller answers 413."""


class OrderPublisher:
    """Order events onto `transactions`, counted, with BrokerUnavailable when not acknowledged."""

    def __init__(self, ctx: ServiceContext, ack_timeout: float = 15.0) -> None:
        self._producer = BulkProducer(ctx.settings, timeout=ack_timeout)
        self._topic = TopicPublisher(ctx, "transactions", self._producer)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(
        self, tenant_id: str, keys: Sequence[bytes], payloads: Sequence[bytes]
    ) -> None:
        """Send all events, then wait for every acknowledgement; raises BrokerUnavailable, or
        MessageTooLarge (before sending anything, when one event is over `MAX_EVENT_BYTES`)."""
        largest = max(map(len, payloads), default=0)
        if largest > MAX_EVENT_BYTES:
            raise MessageTooLarge(
                f"an order's event is {largest} bytes; the broker takes at most {MAX_EVENT_BYTES}"
            )
        started = time.perf_counter()
        try:
            await self._topic.send_all(zip(keys, payloads, strict=True))
        except MessageSizeTooLargeError as exc:  # a broker configured smaller than the client
            raise MessageTooLarge(f"the broker refused an event as too large: {exc}") from exc
        except Exception as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc
        telemetry.PUBLISH_LATENCY.observe(time.perf_counter() - started)
        telemetry.ORDERS_PUBLISHED.labels(tenant_id).inc(len(payloads))
