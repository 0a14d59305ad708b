"""A service's subscribers join their groups side by side: one join that never finishes (seen on
the embedded broker after a group's members stopped) must not keep the others from starting."""

from __future__ import annotations

import asyncio

import pytest

from retention_shared.config import Settings
from retention_shared.kafka.subscribers import subscriber
from retention_shared.service import ServiceContext, _subscribe


async def test_a_hanging_group_join_does_not_hold_up_the_other_subscribers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = ServiceContext.create("ingest", Settings(kafka_bootstrap="127.0.0.1:1"))

    @subscriber(ctx, "customer-erasures", group_id="erasures")
    async def erase(body: bytes) -> None:
        raise AssertionError("not consumed here")

    @subscriber(ctx, "orders.raw", group_id="orders")
    async def order(body: bytes) -> None:
        raise AssertionError("not consumed here")

    hanging, started = asyncio.Event(), asyncio.Event()
    first, second = ctx.broker.subscribers

    async def never_joins() -> None:
        hanging.set()
        await asyncio.Event().wait()

    async def joins() -> None:
        started.set()

    monkeypatch.setattr(first, "start", never_joins)
    monkeypatch.setattr(second, "start", joins)
    task = asyncio.create_task(_subscribe(ctx))
    try:
        await asyncio.wait_for(started.wait(), timeout=30)
        assert hanging.is_set()
        assert not ctx.subscribed.is_set()  # /healthz says not every group has been joined
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
