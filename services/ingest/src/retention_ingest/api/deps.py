"""Dependencies shared by ingest's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status

from retention_shared.auth import Principal, Role, authenticate


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
