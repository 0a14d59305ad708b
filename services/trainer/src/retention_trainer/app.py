"""The trainer service: keeps every transaction, trains and publishes champion model bundles."""

from __future__ import annotations

from collections import Counter

from fastapi import FastAPI

from retention_shared.config import Settings
from retention_shared.service import ServiceContext, create_service_app
from retention_trainer.api import lake
from retention_trainer.consumers import transactions


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("trainer", settings)
    orders_seen: Counter[str] = Counter()
    transactions.register(ctx, orders_seen)
    app = create_service_app(
        ctx,
        description="Point-in-time training, backtests and champion bundles in the BentoML store.",
        routers=[lake.router],
    )
    app.state.orders_seen = orders_seen
    return app
