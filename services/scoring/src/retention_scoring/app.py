"""The scoring service: materialized features, champion models, scores with reasons."""

from __future__ import annotations

from fastapi import FastAPI

from retention_scoring.api import customers
from retention_scoring.consumers import features
from retention_shared.config import Settings
from retention_shared.service import ServiceContext, create_service_app


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("scoring", settings)
    latest: features.LatestFeatures = {}
    features.register(ctx, latest)
    app = create_service_app(
        ctx,
        description="Real-time churn, lifetime value and segment scores with reasons.",
        routers=[customers.router],
    )
    app.state.latest = latest
    return app
