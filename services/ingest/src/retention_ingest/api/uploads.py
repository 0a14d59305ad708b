"""Uploads of whole exports: `POST /v1/uploads` (202 at once), status, and the rejected rows."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from fastapi.responses import FileResponse

from retention_ingest import metrics
from retention_ingest.bounds import utc_now
from retention_ingest.dates import check_timezone
from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.file_ingest import inspect_file
from retention_ingest.mapping import ColumnMapping
from retention_ingest.store import IngestStore
from retention_ingest.upload_limits import UploadLimits
from retention_ingest.uploads import Upload, UploadRunner
from retention_shared.auth import IngestCaller
from retention_shared.service import ServiceContext

router = APIRouter(prefix="/v1", tags=["uploads"])


_STATUS = {
    IngestErrorCode.UNKNOWN_FORMAT: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    IngestErrorCode.UPLOAD_TOO_LARGE: status.HTTP_413_CONTENT_TOO_LARGE,
}


def ingest_error(error: IngestError) -> HTTPException:
    code = _STATUS.get(error.code, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return HTTPException(code, detail=error.as_detail())


@router.post("/uploads", status_code=status.HTTP_202_ACCEPTED)
async def create_upload(
    request: Request,
    caller: IngestCaller,
    file: Annotated[
        UploadFile, File(description="CSV, TSV, XLSX, Parquet or CDNOW text; gzip or not.")
    ],
    mapping: Annotated[str | None, Form(description="JSON: canonical name → column.")] = None,
    timezone: Annotated[str | None, Form(description="IANA zone of naive timestamps.")] = None,
) -> dict[str, object]:
    received_at = utc_now()
    ctx: ServiceContext = request.app.state.ctx
    store: IngestStore = request.app.state.ingest_store
    saved_mapping, saved_timezone = store.mapping(caller.tenant_id)
    try:
        chosen_mapping = ColumnMapping.parse(mapping) if mapping else saved_mapping
        chosen_timezone = check_timezone(
            timezone or saved_timezone or ctx.settings.default_timezone
        )
    except IngestError as error:
        raise ingest_error(error) from None

    upload_id = uuid.uuid4().hex
    directory = ctx.settings.data_dir / "ingest" / "uploads" / upload_id
    directory.mkdir(parents=True)
    path = directory / "upload"
    try:
        await asyncio.to_thread(_save, file, path)
        size = path.stat().st_size
        # Header-level problems (format, mapping, columns, declared sizes) are answered now, not
        # as a failed upload.
        plan = await asyncio.to_thread(
            inspect_file,
            path,
            work_dir=directory / "work",
            mapping=chosen_mapping,
            limits=UploadLimits.from_settings(ctx.settings),
        )
    except IngestError as error:
        shutil.rmtree(directory, ignore_errors=True)
        raise ingest_error(error) from None
    metrics.UPLOAD_BYTES.labels(caller.tenant_id).inc(size)
    store.create_upload(
        upload_id, caller.tenant_id, file.filename, size, {"timezone": chosen_timezone}
    )
    runner: UploadRunner = request.app.state.upload_runner
    runner.submit(
        Upload(upload_id, caller.tenant_id, plan, chosen_timezone, directory, path, received_at)
    )
    return {
        "upload_id": upload_id,
        "state": "queued",
        "status_url": f"/v1/uploads/{upload_id}",
        "rejects_url": f"/v1/uploads/{upload_id}/rejects.csv",
    }


def _save(upload: UploadFile, destination: object) -> None:
    with open(destination, "wb") as out:
        shutil.copyfileobj(upload.file, out, length=1024 * 1024)


@router.get("/uploads/{upload_id}")
async def upload_status(
    upload_id: str, request: Request, caller: IngestCaller
) -> dict[str, object]:
    store: IngestStore = request.app.state.ingest_store
    found = store.upload(caller.tenant_id, upload_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "upload_id", "problem": f"no upload {upload_id!r}"},
        )
    return found


@router.get("/uploads/{upload_id}/rejects.csv", response_class=FileResponse)
async def upload_rejects(upload_id: str, request: Request, caller: IngestCaller) -> FileResponse:
    found = await upload_status(upload_id, request, caller)
    ctx: ServiceContext = request.app.state.ctx
    path = ctx.settings.data_dir / "ingest" / "uploads" / upload_id / "rejects.csv"
    if not path.exists():
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={
                "field": "upload_id",
                "problem": f"upload is {found['state']}; rejects come when it is done",
            },
        )
    return FileResponse(path, media_type="text/csv", filename=f"rejects-{upload_id}.csv")
