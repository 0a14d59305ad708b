"""The ingest service: orders in over HTTP and `orders.raw`, clean `OrderEvent`s out."""

from __future__ import annotations

from fastapi import FastAPI
from retention_shared.config import Settings
from retention_shared.service import ServiceContext, create_service_app

from retention_ingest.api import orders
from retention_ingest.consumers import orders_raw


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("ingest", settings)
    orders_raw.register(ctx)
    return create_service_app(
        ctx,
        description="Validates, maps, cleans and publishes a retailer's orders as transactions.",
        routers=[orders.router],
    )
