"""The console's routers: health first, then every page."""

from __future__ import annotations

from fastapi import APIRouter

from retention_console.pages import (
    campaigns,
    cohorts,
    customers,
    data,
    health,
    models,
    overview,
    segments,
    signin,
)

ROUTERS: list[APIRouter] = [
    health.router,
    signin.router,
    overview.router,
    segments.router,
    customers.router,
    cohorts.router,
    campaigns.router,
    data.router,
    models.router,
]
