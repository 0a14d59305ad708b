"""The cohorts page (being built)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retention_console.auth import CurrentSession
from retention_console.rendering import render

router = APIRouter()


@router.get("/cohorts")
async def cohorts_page(request: Request, session: CurrentSession) -> Response:
    return render(request, "problem.html", title="Cohorts", message="This page is being built.")
