"""The webhooks service: tenants subscribe URLs to events; signed deliveries with retries.

One process holds the subscriptions and the delivery log in SQLite under the data directory
(`webhooks/webhooks.sqlite`): run it as one replica with a persistent volume (docs/webhooks.md).
"""

from __future__ import annotations

from fastapi import FastAPI

from retention_shared.config import Settings
from retention_shared.service import ServiceContext, create_service_app
from retention_webhooks.api import webhooks as webhooks_api
from retention_webhooks.consumers import customer_erasures
from retention_webhooks.consumers.dispatcher import Dispatcher
from retention_webhooks.delivery import Deliverer
from retention_webhooks.store import WebhookStore
from retention_webhooks.targets import parse_networks


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("webhooks", settings)
    allowed = parse_networks(settings.webhooks_allowed_networks)
    store = WebhookStore(settings.data_dir / "webhooks" / "webhooks.sqlite")
    deliverer = Deliverer(store, settings, allowed)
    dispatcher = Dispatcher(ctx, store, on_recorded=deliverer.wake)
    customer_erasures.register(ctx, store)

    async def close_store() -> None:
        store.close()

    ctx.readiness.add("dispatcher", dispatcher.check)
    app = create_service_app(
        ctx,
        description="Signed webhooks (Standard Webhooks) for score.changed, model.published, "
        "drift.detected and upload.completed, with retries, parking and a delivery log.",
        routers=[webhooks_api.router],
        on_connected=[deliverer.start, dispatcher.start],
        on_stopping=[dispatcher.stop, deliverer.stop, close_store],
    )
    app.state.store = store
    app.state.deliverer = deliverer
    app.state.allowed_networks = allowed
    return app
