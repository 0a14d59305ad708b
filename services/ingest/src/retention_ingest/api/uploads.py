"""Uploads of whole exports: `POST /v1/uploads` (202 at once), the tenant's uploads newest first,
each one's status, and its rejected rows."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from retention_ingest import telemetry
from retention_ingest.api.deps import Runner, SettingsDep, Store, UploadReader
from retention_ingest.bounds import utc_now
from retention_ingest.dates import check_timezone
from retention_ingest.errors import IngestError, IngestErrorCode
from retention_ingest.file_ingest import inspect_file
from retention_ingest.mapping import ColumnMapping
from retention_ingest.upload_limits import UploadLimits
from retention_ingest.uploads import Upload
from retention_shared.auth import IngestCaller
from retention_shared.cursors import CursorError, decode_cursor, encode_cursor
from retention_shared.openapi_docs import text_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["uploads"])


_STATUS = {
    IngestErrorCode.UNKNOWN_FORMAT: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    IngestErrorCode.UPLOAD_TOO_LARGE: status.HTTP_413_CONTENT_TOO_LARGE,
}


def ingest_error(error: IngestError) -> HTTPException:
    code = _STATUS.get(error.code, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return HTTPException(code, detail=error.as_detail())


class UploadAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "upload_id": "9ab1c2d3e4f5",
                    "state": "queued",
                    "status_url": "/v1/uploads/9ab1c2d3e4f5",
                    "rejects_url": "/v1/uploads/9ab1c2d3e4f5/rejects.csv",
                }
            ]
        }
    )

    upload_id: str
    state: str = Field(description="Always `queued`: the file is read after this answer.")
    status_url: str
    rejects_url: str


@router.post(
    "/uploads",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 413, 415, 422),
)
async def create_upload(
    caller: IngestCaller,
    store: Store,
    settings: SettingsDep,
    runner: Runner,
    file: Annotated[
        UploadFile, File(description="CSV, TSV, XLSX, Parquet or CDNOW text; gzip or not.")
    ],
    mapping: Annotated[str | None, Form(description="JSON: canonical name → column.")] = None,
    timezone: Annotated[str | None, Form(description="IANA zone of naive timestamps.")] = None,
) -> UploadAccepted:
    """Upload a whole export (multipart: `file`, optional `mapping` JSON and `timezone`); 202
    at once, then poll `status_url`. Its format, columns and declared size are checked before
    the answer: an unknown format is 415, a file over the limits 413, a mapping or columns that
    cannot work 422. Without `mapping`, the tenant's saved one or a known layout applies."""
    received_at = utc_now()
    saved_mapping, saved_timezone = store.mapping(caller.tenant_id)
    try:
        chosen_mapping = ColumnMapping.parse(mapping) if mapping else saved_mapping
        chosen_timezone = check_timezone(timezone or saved_timezone or settings.default_timezone)
    except IngestError as error:
        raise ingest_error(error) from None

    upload_id = uuid.uuid4().hex
    directory = settings.data_dir / "ingest" / "uploads" / upload_id
    directory.mkdir(parents=True)
    path = directory / "upload"
    try:
        await asyncio.to_thread(save_file, file, path)
        size = path.stat().st_size
        # Header-level problems (format, mapping, columns, declared sizes) are answered now, not
        # as a failed upload.
        plan = await asyncio.to_thread(
            inspect_file,
            path,
            work_dir=directory / "work",
            mapping=chosen_mapping,
            limits=UploadLimits.from_settings(settings),
        )
    except IngestError as error:
        shutil.rmtree(directory, ignore_errors=True)
        raise ingest_error(error) from None
    telemetry.UPLOAD_BYTES.labels(caller.tenant_id).inc(size)
    store.create_upload(
        upload_id, caller.tenant_id, file.filename, size, {"timezone": chosen_timezone}
    )
    runner.submit(
        Upload(upload_id, caller.tenant_id, plan, chosen_timezone, directory, path, received_at)
    )
    return UploadAccepted(
        upload_id=upload_id,
        state="queued",
        status_url=f"/v1/uploads/{upload_id}",
        rejects_url=f"/v1/uploads/{upload_id}/rejects.csv",
    )


def save_file(upload: UploadFile, destination: Path) -> None:
    with open(destination, "wb") as out:
        shutil.copyfileobj(upload.file, out, length=1024 * 1024)


class UploadProblem(BaseModel):
    code: str
    field: str | None = None
    problem: str


class UploadSummary(BaseModel):
    """One upload as the list shows it; `GET /v1/uploads/{id}` has its full status."""

    upload_id: str
    filename: str | None
    state: str = Field(description="queued, running, done or failed")
    bytes: int
    created_at: datetime
    finished_at: datetime | None
    layout: str | None = None
    rows_read: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    orders_published: int | None = None
    customers: int | None = Field(None, description="Customers in the file (once done).")
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    error: UploadProblem | None = None
    status_url: str


_SUMMARY_EXAMPLE = {
    "upload_id": "9ab1c2d3e4f5",
    "filename": "orders-2011.csv",
    "state": "done",
    "bytes": 45812334,
    "created_at": "2024-05-01T09:00:00Z",
    "finished_at": "2024-05-01T09:01:12Z",
    "layout": "online_retail",
    "rows_read": 541909,
    "accepted": 406829,
    "rejected": 135080,
    "rejected_by_reason": {"missing_customer_id": 135080},
    "orders_published": 22190,
    "customers": 4372,
    "first_order_at": "2010-12-01T08:26:00Z",
    "last_order_at": "2011-12-09T12:50:00Z",
    "error": None,
    "status_url": "/v1/uploads/9ab1c2d3e4f5",
}


class UploadStatus(BaseModel):
    """An upload's full status as it is recorded: counts while running (`progress`), the result
    once done, the error of a failed one."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "upload_id": "9ab1c2d3e4f5",
                    "state": "running",
                    "filename": "orders-2011.csv",
                    "bytes": 45812334,
                    "created_at": "2024-05-01T09:00:00+00:00",
                    "finished_at": None,
                    "timezone": "Europe/London",
                    "layout": "online_retail",
                    "progress": {
                        "rows_read": 200000,
                        "accepted": 151034,
                        "rejected_by_reason": {"missing_customer_id": 48966},
                        "orders_published": 8120,
                    },
                }
            ]
        },
    )

    upload_id: str
    state: str = Field(description="queued, running, done or failed")
    filename: str | None
    bytes: int
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    finished_at: str | None = Field(json_schema_extra={"format": "date-time"})
    timezone: str | None = None
    layout: str | None = None
    progress: dict[str, Any] | None = Field(None, description="Counts so far.")
    result: dict[str, Any] | None = Field(None, description="The counts of a finished upload.")
    error: UploadProblem | None = None


class UploadList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "uploads": [_SUMMARY_EXAMPLE],
                    "next_cursor": "WyJ1cGxvYWRzIiwiMjAyNC0wNS0wMVQwOTowMDowMCIsIjlhYjEiXQ",
                }
            ]
        }
    )

    uploads: list[UploadSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


_LIST = "uploads"


def _summary(found: dict[str, Any]) -> UploadSummary:
    # The counts as far as they go: the result once done, the progress while running or failed.
    counts = found.get("result") or found.get("progress") or {}
    reasons = counts.get("rejected_by_reason") or {}
    return UploadSummary(
        upload_id=found["upload_id"],
        filename=found["filename"],
        state=found["state"],
        bytes=found["bytes"],
        created_at=found["created_at"],
        finished_at=found["finished_at"],
        layout=found.get("layout"),
        rows_read=counts.get("rows_read"),
        accepted=counts.get("accepted"),
        rejected=counts.get("rejected", sum(reasons.values()) if counts else None),
        rejected_by_reason=reasons,
        orders_published=(found.get("progress") or {}).get("orders_published"),
        customers=counts.get("customers"),
        first_order_at=counts.get("first_order_at"),
        last_order_at=counts.get("last_order_at"),
        error=found.get("error"),
        status_url=f"/v1/uploads/{found['upload_id']}",
    )


@router.get("/uploads", responses=problem_responses(401, 403, 422))
async def list_uploads(
    caller: UploadReader,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=500, description="Uploads per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page.")
    ] = None,
) -> UploadList:
    """The tenant's uploads, newest first (role `read` or `ingest`)."""
    after = None
    if cursor is not None:
        try:
            created_at, upload_id = decode_cursor(_LIST, cursor, (str, str))
        except CursorError as error:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail={"field": "cursor", "problem": str(error)},
            ) from None
        after = (str(created_at), str(upload_id))
    # One row more than the page says whether another page follows.
    found = store.upload_page(caller.tenant_id, limit + 1, after)
    page = found[:limit]
    last = page[-1] if len(found) > limit else None
    return UploadList(
        uploads=[_summary(upload) for upload in page],
        next_cursor=None
        if last is None
        else encode_cursor(_LIST, (last["created_at"], last["upload_id"])),
    )


# The status is passed on as recorded (`UploadStatus` documents it; its blob may gain keys).
@router.get(
    "/uploads/{upload_id}",
    response_model=None,
    responses={200: {"model": UploadStatus, "description": "The upload's status."}}
    | problem_responses(401, 403, 404, 422),
)
async def upload_status(upload_id: str, caller: UploadReader, store: Store) -> dict[str, object]:
    """An upload's state and counts (roles `read` or `ingest`); 404 for an unknown id and for
    another tenant's alike."""
    found = store.upload(caller.tenant_id, upload_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "upload_id", "problem": f"no upload {upload_id!r}"},
        )
    return found


@router.get(
    "/uploads/{upload_id}/rejects.csv",
    response_class=FileResponse,
    responses=text_response(
        "Every rejected row: `row`, `reason`, then the file's own columns as they were, spreadsheet-safe, as `rejects-<id>.csv`.",
        {
            "text/csv": "row,reason,Invoice,StockCode,Quantity,InvoiceDate,Price,Customer ID\n"
            "17,missing_customer_id,536365,85123A,6,2010-12-01 08:26:00,2.55,\n"
        },
    )
    | problem_responses(401, 403, 404, 409, 422),
)
async def upload_rejects(
    upload_id: str, caller: IngestCaller, store: Store, settings: SettingsDep
) -> FileResponse:
    """The upload's rejected rows as CSV (role `ingest`); 409 until the upload is done."""
    found = await upload_status(upload_id, caller, store)
    path = settings.data_dir / "ingest" / "uploads" / upload_id / "rejects.csv"
    if not path.exists():
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={
                "field": "upload_id",
                "problem": f"upload is {found['state']}; rejects come when it is done",
            },
        )
    return FileResponse(path, media_type="text/csv", filename=f"rejects-{upload_id}.csv")
