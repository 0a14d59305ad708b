"""Shared dependencies and answers of the scoring routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from retention_scoring.champions import Champion
from retention_scoring.population import Population
from retention_scoring.state import ScoringState, ScoringUnavailable

RETRY_AFTER_SECONDS = "30"


async def get_state(request: Request) -> ScoringState:
    return request.app.state.scoring


State = Annotated[ScoringState, Depends(get_state)]


def not_found(customer_id: str) -> HTTPException:
    # The same answer for an unknown id and another tenant's customer: nothing to tell apart.
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail={"field": "customer_id", "problem": f"no customer {customer_id!r}"},
    )


def unprocessable(field: str, problem: str) -> HTTPException:
    """A 422 in the shape of the service's validation errors: a list of {field, problem}."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_ENTITY, detail=[{"field": field, "problem": problem}]
    )


def unavailable(reason: str) -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail={"problem": reason},
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def check_segment(champion: Champion, segment: str | None, field: str) -> None:
    """422 naming `field` for a segment the tenant's model does not have (a typo would
    otherwise read as an empty list)."""
    names = champion.bundle.segmenter.names
    if segment is not None and segment not in names:
        known = ", ".join(repr(name) for name in names)
        raise unprocessable(field, f"no segment {segment!r}; this model's segments: {known}")


def champion_of(state: ScoringState, tenant_id: str) -> Champion:
    try:
        return state.champion(tenant_id)
    except ScoringUnavailable as exc:
        raise unavailable(exc.reason) from None


async def population_of(state: ScoringState, tenant_id: str) -> Population | None:
    """The tenant's scored population (None: no customers yet); 503 without a champion."""
    try:
        return await state.population(tenant_id)
    except ScoringUnavailable as exc:
        raise unavailable(exc.reason) from None
