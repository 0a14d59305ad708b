"""The features service: `transactions` in, an always-current vector per customer out."""

from __future__ import annotations

from fastapi import FastAPI

from retention_features.api import customers, orders
from retention_features.consumers.transactions import TransactionsConsumer
from retention_features.erasure import FeaturesErasure
from retention_shared.config import Settings
from retention_shared.erasure import ErasureList, instance_name, subscribe_erasures
from retention_shared.service import ServiceContext, create_service_app


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("features", settings)
    state_dir = settings.data_dir / "features"
    erasures = ErasureList(state_dir / "erasures.sqlite")
    consumer = TransactionsConsumer(
        ctx, state_dir=state_dir, max_batch=settings.features_max_batch, erasures=erasures
    )
    # Every instance reads every erasure request: each holds the partitions it owns.
    instance = instance_name(state_dir)
    subscribe_erasures(
        ctx,
        f"retention-features.erasures.{instance}",
        instance,
        FeaturesErasure(consumer, erasures).erase,
    )
    ctx.readiness.add("transactions", consumer.check)
    app = create_service_app(
        ctx,
        description="Durable per-customer order state and the feature vector per customer.",
        routers=[customers.router, orders.router],
        on_connected=[consumer.start],
        on_stopping=[consumer.stop],
    )
    app.state.consumer = consumer
    return app
