"""Shared dependencies of the scoring routes: the state, the service context, the erasure
ledger and publisher, and the champion and population a route works on."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request

from retention_scoring.champions import LoadedChampion
from retention_scoring.erasure_ledger import ErasureLedger
from retention_scoring.errors import ScoringUnavailable, unavailable, unprocessable
from retention_scoring.population import Population
from retention_scoring.publishers.customer_erasures import CustomerErasuresPublisher
from retention_scoring.state import ScoringState
from retention_shared.app_state import app_state
from retention_shared.problems import problem_responses
from retention_shared.service import ServiceContext

# The problems the routes answer, for their OpenAPI `responses`: every route takes a `read` key
# (401 without a known key, 403 without the role) and needs the tenant's champion (503).
LIST_ERRORS = problem_responses(401, 403, 422, 503)
CUSTOMER_ERRORS = problem_responses(401, 403, 404, 422, 503)


State = Annotated[ScoringState, Depends(app_state("scoring"))]
Context = Annotated[ServiceContext, Depends(app_state("ctx"))]
Ledger = Annotated[ErasureLedger, Depends(app_state("erasures"))]
ErasureRequests = Annotated[CustomerErasuresPublisher, Depends(app_state("erasure_requests"))]


def replica_client(request: Request) -> httpx.AsyncClient:
    """The client a sharded replica forwards and gathers with (`api/routing.py`)."""
    client: httpx.AsyncClient = request.app.state.replica_client
    return client


def check_segment(champion: LoadedChampion, segment: str | None, field: str) -> None:
    """422 naming `field` for a segment the tenant's model does not have (a typo would
    otherwise read as an empty list)."""
    names = champion.bundle.segmenter.names
    if segment is not None and segment not in names:
        known = ", ".join(repr(name) for name in names)
        raise unprocessable(field, f"no segment {segment!r}; this model's segments: {known}")


MAX_SEGMENT_NAME = 256


def segments_of(
    champion: LoadedChampion, values: list[str] | None, field: str
) -> tuple[str, ...] | None:
    """The segments `segment=` names (any of them matches; None: all), each known to the
    tenant's model, else a 422 naming `field`.

    A value is a segment name or a comma list of them (`At risk,Champions`). A value that is
    itself a segment name is taken whole before it is split, so a name holding a comma still
    works sent alone; no persona name has one today.
    """
    if values is None:
        return None
    names = champion.bundle.segmenter.names
    chosen: list[str] = []
    for value in values:
        parts = [value] if value in names else [part.strip() for part in value.split(",")]
        if not all(parts):
            raise unprocessable(field, "an empty entry; name one or more segments")
        chosen.extend(parts)
    for name in chosen:
        if len(name) > MAX_SEGMENT_NAME:  # not echoed back: it could be the whole query string
            raise unprocessable(field, f"a segment name is at most {MAX_SEGMENT_NAME} characters")
        check_segment(champion, name, field)
    return tuple(dict.fromkeys(chosen))


def champion_of(state: ScoringState, tenant_id: str) -> LoadedChampion:
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
