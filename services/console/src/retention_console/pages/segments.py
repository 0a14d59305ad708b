"""The segments page (being built)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from retention_console.auth import CurrentSession
from retention_console.rendering import render

router = APIRouter()


@router.get("/segments")
async def segments_page(request: Request, session: CurrentSession) -> Response:
    return render(request, "problem.html", title="Segments", message="This page is being built.")
