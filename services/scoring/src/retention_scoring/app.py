"""The scoring service: materialized features, champion models, scores with reasons, events.

What one instance reads, holds and publishes is `instance.py`; what `/readyz` checks is
`readiness.py`; the routes are `api/`. This module only wires them together.
"""

from __future__ import annotations

from fastapi import FastAPI

from retention_scoring import readiness
from retention_scoring.api.routers import ROUTERS
from retention_scoring.api.routing import add_routing
from retention_scoring.instance import ScoringInstance
from retention_shared.config import Settings
from retention_shared.service import ServiceContext, create_service_app


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("scoring", settings)
    instance = ScoringInstance(ctx)
    readiness.add_checks(ctx.readiness, instance)
    on_stopping = [instance.stop]
    app = create_service_app(
        ctx,
        description="Real-time churn, lifetime value and segment scores with reasons.",
        routers=ROUTERS,
        on_connected=[instance.start],
        on_stopping=on_stopping,
    )
    sharding = instance.state.sharding
    if sharding is not None:
        add_routing(app, sharding.replica_id, settings.scoring_forward_timeout_seconds)
        on_stopping.append(app.state.replica_client.aclose)
    app.state.scoring = instance.state
    app.state.erasures = instance.ledger
    app.state.erasure_requests = instance.erasure_requests
    return app
