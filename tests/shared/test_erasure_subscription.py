"""`subscribe_erasures` on the real broker: each request reaches the handler, is confirmed on
`erasure-audit` without the customer's id, and a broker failure inside the handler is retried,
never dead-lettered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka.errors import KafkaTimeoutError

from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.erasure import subscribe_erasures
from retention_shared.events import CustomerErased, CustomerErasureRequested, decode_event
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key
from tests.support.broker import isolated_settings
from tests.support.features_service import read_to_end
from tests.support.real_orders import publish

pytestmark = pytest.mark.slow


def request(erasure_id: str, customer_id: str) -> CustomerErasureRequested:
    return CustomerErasureRequested(
        erasure_id=erasure_id,
        tenant_id="acme",
        customer_id=customer_id,
        requested_at=datetime(2026, 12, 4, tzinfo=UTC),
        requested_by="acme/admin/key:0123456789ab",
    )


def test_requests_are_erased_confirmed_and_a_broker_failure_is_retried(
    kafka: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka, tmp_path).model_copy(update={"poison_max_attempts": 2})
    ctx = ServiceContext.create("ingest", settings)
    calls: list[str] = []

    async def erase(asked: CustomerErasureRequested) -> dict[str, int]:
        calls.append(asked.customer_id)
        if asked.customer_id == "12437" and calls.count("12437") <= 3:
            raise KafkaTimeoutError()  # more times than poison_max_attempts: still retried
        return {"reject_rows": len(asked.customer_id)}

    subscribe_erasures(ctx, "erasure-test", "host-1", erase)
    asked = [request("e1", "12437"), request("e2", "12583")]
    records = [(customer_key(r.tenant_id, r.customer_id), r.to_bytes()) for r in asked]

    async def scenario() -> list[CustomerErased]:
        await publish(settings, ctx.topics.customer_erasures, records)
        await ctx.broker.start()
        try:
            async with asyncio.timeout(60):
                while True:
                    audit = await read_to_end(settings, ctx.topics.erasure_audit)
                    if len(audit) >= 2:
                        assert all(
                            b"12437" not in r.value and b"12583" not in r.value for r in audit
                        )
                        return [decode_event(CustomerErased, r.value) for r in audit]
                    await asyncio.sleep(0.3)
        finally:
            await ctx.broker.stop()

    confirmed = {event.erasure_id: event for event in asyncio.run(scenario())}
    assert calls.count("12437") == 4 and calls.count("12583") == 1
    assert confirmed.keys() == {"e1", "e2"}
    first = confirmed["e1"]
    assert (first.tenant_id, first.service, first.instance) == ("acme", "ingest", "host-1")
    assert first.requested_by == "acme/admin/key:0123456789ab"
    assert first.removed == {"reject_rows": 5}
    assert asyncio.run(read_to_end(settings, ctx.topics.transactions_rejected)) == []
