"""The scoring API's routers, in the order the OpenAPI document lists them."""

from __future__ import annotations

from fastapi import APIRouter

from retention_scoring.api import (
    campaigns,
    customers,
    erasures,
    insights,
    model,
    ping,
    replicas,
    score_history,
    scores,
    segment_profiles,
    segments,
)

ROUTERS: list[APIRouter] = [
    customers.router,
    score_history.router,
    insights.router,
    erasures.router,
    scores.router,
    segments.router,
    segment_profiles.router,
    campaigns.router,
    model.router,
    ping.router,
    replicas.router,
]
