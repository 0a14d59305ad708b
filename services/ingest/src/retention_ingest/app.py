"""The ingest service: orders in over HTTP, `orders.raw` and uploads; clean `OrderEvent`s out."""

from __future__ import annotations

from fastapi import FastAPI

from retention_ingest.api import mappings, orders, upload_preview, uploads
from retention_ingest.consumers import customer_erasures, orders_raw
from retention_ingest.publishers.transactions import OrderPublisher
from retention_ingest.store import IngestStore
from retention_ingest.uploads import UploadRunner
from retention_shared.config import Settings
from retention_shared.erasure import ErasureList
from retention_shared.service import ServiceContext, create_service_app


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("ingest", settings)
    store = IngestStore(settings.data_dir / "ingest" / "ingest.sqlite")
    store.interrupt_unfinished()
    store.erasures = ErasureList(settings.data_dir / "ingest" / "erasures.sqlite")
    publisher = OrderPublisher(ctx, ack_timeout=settings.publish_timeout_seconds)
    runner = UploadRunner(ctx, store, publisher)
    orders_raw.register(ctx, store, publisher)
    customer_erasures.register(ctx, store)
    app = create_service_app(
        ctx,
        description="Validates, maps, cleans and publishes a retailer's orders as transactions.",
        routers=[orders.router, uploads.router, upload_preview.router, mappings.router],
        on_connected=[publisher.start],
        on_stopping=[runner.stop, publisher.stop],
        body_limits={"/v1/uploads": settings.max_upload_bytes},
    )
    app.state.ingest_store = store
    app.state.publisher = publisher
    app.state.upload_runner = runner
    return app
