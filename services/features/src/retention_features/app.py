"""The features service: `transactions` in, an always-current vector per customer out."""

from __future__ import annotations

from fastapi import FastAPI
from retention_shared.config import Settings
from retention_shared.service import ServiceContext, create_service_app

from retention_features.api import customers
from retention_features.consumers import transactions
from retention_features.state import FeatureStore


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("features", settings)
    store = FeatureStore()
    transactions.register(ctx, store)
    app = create_service_app(
        ctx,
        description="Durable per-customer order state and the feature vector per customer.",
        routers=[customers.router],
    )
    app.state.store = store
    return app
