"""The champion announcer on the real broker, in-process: it fills in what `model-events` lacks,
adds nothing when the topic names every champion, and notices a champion announced over while
it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from retention_shared.config import Settings
from retention_shared.events import ModelEvent, ModelPublished, decode_event
from retention_shared.service import ServiceContext
from retention_shared.topics import Topics
from retention_trainer.announcer import ChampionAnnouncer
from retention_trainer.runs.history import orders_summary
from retention_trainer.store import ChampionRecord, RunRecord, RunStatus, RunStore, Trigger
from tests.support.champion_store import PROMOTED_AT
from tests.support.kafka_reading import read_until
from tests.support.scoring_service import announce, model_published
from tests.support.uci_orders import TEST_DATA, load_orders

TAGS = {"acme": "retention-acme:v1", "globex": "retention-globex:v7"}


def _store(path: Path) -> RunStore:
    store = RunStore(path)
    for tenant, tag in TAGS.items():
        orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant=tenant)
        record = RunRecord(
            run_id=f"run-{tenant}",
            tenant_id=tenant,
            status=RunStatus.PUBLISHED,
            triggers=[Trigger("schedule", at=PROMOTED_AT)],
            options={},
            created_at=PROMOTED_AT,
            model_tag=tag,
            data=orders_summary(orders),
        )
        store.add(record)
        store.save(
            record, ChampionRecord(tenant, tag, record.run_id, {"roc_auc": 0.7}, PROMOTED_AT)
        )
    return store


async def _published(settings: Settings, at_least: int) -> list[ModelPublished]:
    topic = Topics.with_prefix(settings.topic_prefix).model_events
    records = await read_until(settings, topic, lambda found: len(found) >= at_least)
    events = [decode_event(ModelEvent, r.value) for r in records]
    return [e for e in events if isinstance(e, ModelPublished)]


def test_announces_what_model_events_lacks_and_only_that(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    # The bundles live in an export location (so no local model store is needed here).
    settings = kafka_settings.model_copy(update={"model_export_url": "s3://models/retention"})
    store = _store(tmp_path / "runs.sqlite")

    async def scenario() -> None:
        ctx = ServiceContext.create("trainer", settings)
        await ctx.broker.start()
        announcer = ChampionAnnouncer(ctx, store, asyncio.Lock())
        try:
            assert sorted(await announcer.reconcile()) == ["acme", "globex"]
            first = await _published(settings, at_least=2)
            assert {(e.tenant_id, e.model_tag, e.run_id) for e in first} == {
                ("acme", TAGS["acme"], "run-acme"),
                ("globex", TAGS["globex"], "run-globex"),
            }
            assert all(e.published_at == PROMOTED_AT for e in first)
            assert (await announcer.check())[0]

            assert await announcer.reconcile() == []  # the topic names both: nothing to add

            # Another model announced over acme's champion while the trainer runs.
            await announce(settings, model_published("acme", "retention-acme:other"))
            assert await announcer.reconcile() == ["acme"]
            events = await _published(settings, at_least=4)
            assert [e.model_tag for e in events if e.tenant_id == "acme"] == [
                TAGS["acme"],
                "retention-acme:other",
                TAGS["acme"],
            ]
        finally:
            await ctx.broker.stop()

    asyncio.run(scenario())
    store.close()


def test_a_check_waits_for_a_promotion_in_progress(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"model_export_url": "s3://models/retention"})
    store = _store(tmp_path / "runs.sqlite")

    async def scenario() -> None:
        ctx = ServiceContext.create("trainer", settings)
        await ctx.broker.start()
        lock = asyncio.Lock()
        announcer = ChampionAnnouncer(ctx, store, lock)
        try:
            async with lock:  # a promotion between its announcement and its stored pointer
                check = asyncio.create_task(announcer.reconcile())
                await asyncio.sleep(1.0)
                assert not check.done()
            assert sorted(await check) == ["acme", "globex"]
        finally:
            await ctx.broker.stop()

    asyncio.run(scenario())
    store.close()
