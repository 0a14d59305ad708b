"""Dependencies shared by ingest's routes: who may read uploads, and the store, the publisher,
the upload runner and the settings the routes work with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from retention_ingest.publishers.transactions import OrderPublisher
from retention_ingest.store import IngestStore
from retention_ingest.uploads import UploadRunner
from retention_shared.auth import Principal, Role, authenticate
from retention_shared.config import Settings


async def _upload_reader(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    # Sending files takes `ingest`; seeing what became of them also `read`: the console shows
    # the upload history to read-only users, and the key that sent a file must see its status.
    if not (principal.has(Role.READ) or principal.has(Role.INGEST)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail={"field": "Authorization", "problem": "this key lacks the read or ingest role"},
        )
    return principal


async def get_store(request: Request) -> IngestStore:
    return request.app.state.ingest_store


async def get_publisher(request: Request) -> OrderPublisher:
    return request.app.state.publisher


async def get_runner(request: Request) -> UploadRunner:
    return request.app.state.upload_runner


async def get_settings(request: Request) -> Settings:
    return request.app.state.ctx.settings


UploadReader = Annotated[Principal, Depends(_upload_reader)]
Store = Annotated[IngestStore, Depends(get_store)]
Publisher = Annotated[OrderPublisher, Depends(get_publisher)]
Runner = Annotated[UploadRunner, Depends(get_runner)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
