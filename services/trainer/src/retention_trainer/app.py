"""The trainer service: keeps every transaction, trains and publishes champion model bundles."""

from __future__ import annotations

from fastapi import FastAPI

from retention_shared.config import Settings
from retention_shared.erasure import ErasureList
from retention_shared.service import ServiceContext, create_service_app
from retention_trainer.announcer import ChampionAnnouncer
from retention_trainer.api.routers import ROUTERS
from retention_trainer.cohort_cache import CohortCache
from retention_trainer.consumers import customer_erasures, triggers
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.lake import open_lake
from retention_trainer.migration_cache import SegmentMigrations
from retention_trainer.runs.promotion import set_champion_gauges
from retention_trainer.runs.queue import RunManager
from retention_trainer.schedule import RetrainSchedule
from retention_trainer.store import RunStore
from retention_trainer.watch import LakeWatch


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("trainer", settings)
    store = RunStore(settings.data_dir / "trainer" / "runs.sqlite")
    erasures = ErasureList(settings.data_dir / "trainer" / "erasures.sqlite")
    lake = LakeConsumer(ctx, open_lake(settings), erasures=erasures)
    runs = RunManager(ctx, store, lake)
    schedule = RetrainSchedule(runs, lake, settings.retrain_every_hours)
    watch = LakeWatch(ctx, runs, lake)
    announcer = ChampionAnnouncer(ctx, store, runs.announcing)
    triggers.register(ctx, runs)
    customer_erasures.register(ctx, lake, erasures)
    for champion in store.champions():
        set_champion_gauges(champion)
    watch.restore_gauges()

    async def resume_runs() -> None:
        runs.resume()

    async def close_store() -> None:
        store.close()

    ctx.readiness.add("lake", lake.check)
    ctx.readiness.add("champions announced", announcer.check)
    app = create_service_app(
        ctx,
        description="Point-in-time training, backtests and champion bundles in the BentoML store.",
        routers=ROUTERS,
        on_connected=[lake.start, announcer.start, resume_runs, schedule.start, watch.start],
        on_stopping=[watch.stop, schedule.stop, announcer.stop, runs.stop, lake.stop, close_store],
    )
    app.state.lake = lake
    app.state.runs = runs
    app.state.migrations = SegmentMigrations(lake, store)
    app.state.cohorts = CohortCache(lake)
    return app
