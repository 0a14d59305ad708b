"""`/healthz` and `/readyz`, outside the OpenAPI document like every other service's."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "console"}


@router.get("/readyz")
async def readyz() -> dict[str, object]:
    # Ready whatever the services do: a console that stays up is what tells users which service
    # is down.
    return {"ready": True, "service": "console", "checks": {}}
