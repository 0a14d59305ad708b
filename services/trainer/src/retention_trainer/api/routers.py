"""The trainer API's routers, in the order the OpenAPI document lists them."""

from __future__ import annotations

from fastapi import APIRouter

from retention_trainer.api import cohorts, lake, outcomes, runs, segments

ROUTERS: list[APIRouter] = [
    lake.router,
    runs.router,
    outcomes.router,
    cohorts.router,
    segments.router,
]
