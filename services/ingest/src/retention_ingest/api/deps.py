"""Dependencies shared by ingest's routes: who may read uploads, and the store, the publisher,
the upload runner and the settings the routes work with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status

from retention_ingest.publishers.transactions import OrderPublisher
from retention_ingest.store import IngestStore
from retention_ingest.uploads import UploadRunner
from retention_shared.app_state import app_state
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


UploadReader = Annotated[Principal, Depends(_upload_reader)]
Store = Annotated[IngestStore, Depends(app_state("ingest_store"))]
Publisher = Annotated[OrderPublisher, Depends(app_state("publisher"))]
Runner = Annotated[UploadRunner, Depends(app_state("upload_runner"))]
SettingsDep = Annotated[Settings, Depends(app_state("ctx.settings"))]
