"""Data: bring an export in, and see what became of every upload.

The steps, each a page that works without JavaScript (htmx and a drop zone only make it nicer):
1. `POST /data/preview`: the file is kept by the console (`staging`) and previewed by ingest
   (`POST /v1/uploads/preview`: layout, delimiter, date format, the first rows, the mapping);
2. `GET /data/files/{id}`: the preview and the column-mapping form; "Check" previews again with
   the chosen mapping, "Import" sends the file with it to `POST /v1/uploads` (and, when asked,
   saves the mapping as the tenant's default with `PUT /v1/mappings/default`);
3. `GET /data/uploads/{id}`: the upload's progress, polled every second, then its result and
   rejected rows (`rejects.csv`, passed on with the user's key).

The history comes from `GET /v1/uploads`. Every count shown is ingest's.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData, UploadFile

from retention_console.pages.deps import (
    Api,
    CheckedForm,
    CurrentSession,
    Ingester,
    Staged,
    settings_of,
)
from retention_console.rendering import csv_download, file_size, is_htmx, render
from retention_console.services import ApiError, UserApi
from retention_console.sessions import Session
from retention_console.staging import StagedFile, StagedFiles, StagedFileTooLarge

router = APIRouter()

HISTORY = 20
# A file is sent to ingest whole for each preview: below this size the preview follows every
# change of the form; above it only the "Check" button asks.
LIVE_PREVIEW_BYTES = 10 * 1024 * 1024
# Sending a large file to ingest takes longer than a page's usual call.
SEND_TIMEOUT = httpx.Timeout(300.0, connect=2.0)
# How the form names each canonical field (ingest's preview lists the fields themselves).
FIELD_LABELS = {
    "customer_id": "Customer ID",
    "order_id": "Order ID",
    "order_datetime": "Order date and time",
    "product_id": "Product ID",
    "quantity": "Quantity",
    "unit_price": "Unit price",
    "order_total": "Order total",
    "currency": "Currency",
    "country": "Country",
}
DATE_ORDERS = {"day_first": "Day first (31/12/2011)", "month_first": "Month first (12/31/2011)"}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space"}
LAYOUTS = {
    "uci_online_retail": "UCI Online Retail",
    "uci_online_retail_ii": "UCI Online Retail II",
    "cdnow": "CDNOW",
    "mapping": "your column mapping",
}
UploadId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
StagedId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.get("/data")
async def data_page(
    request: Request,
    session: CurrentSession,
    api: Api,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> Response:
    return await render_data_page(request, api, cursor)


async def render_data_page(
    request: Request,
    api: UserApi,
    cursor: str | None = None,
    *,
    refused: ApiError | None = None,
    status_code: int = 200,
) -> Response:
    history = await api.get("ingest", "/v1/uploads", limit=HISTORY, cursor=cursor)
    return render(
        request,
        "data.html",
        status_code=status_code,
        page="data",
        uploads=history["uploads"],
        next_cursor=history.get("next_cursor"),
        first_page=cursor is None,
        max_bytes=settings_of(request).max_upload_bytes,
        refused=refused,
        words=WORDS,
    )


@router.post("/data/preview")
async def stage_file(
    request: Request, session: Ingester, form: CheckedForm, api: Api, staged: Staged
) -> Response:
    """Keep the posted file and preview it; then the mapping page."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=NO_FILE)
    try:
        kept = staged.stage(session.id, upload.filename, upload.file)
    except StagedFileTooLarge as too_large:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"The file is larger than the {file_size(too_large.limit)} an upload may be.",
        ) from None
    try:
        kept.preview = await preview(api, kept, mapping=None, timezone=None)
    except ApiError as refused:
        # Not a file ingest can read (format, limits, a broken CSV): the page again, saying why,
        # ready for another file.
        staged.discard(kept)
        return await render_data_page(request, api, refused=refused, status_code=refused.status)
    except BaseException:
        staged.discard(kept)
        raise
    return RedirectResponse(f"/data/files/{kept.id}", status_code=303)


@router.get("/data/files/{staged_id}")
async def mapping_page(
    request: Request, staged_id: StagedId, session: Ingester, staged: Staged
) -> Response:
    return render_mapping(request, kept_file(staged, session, staged_id))


@router.post("/data/files/{staged_id}/check")
async def check_mapping(
    request: Request,
    staged_id: StagedId,
    session: Ingester,
    form: CheckedForm,
    api: Api,
    staged: Staged,
) -> Response:
    """Preview again with the mapping chosen: the preview card (htmx) or the whole page."""
    kept = kept_file(staged, session, staged_id)
    kept.choices = form_choices(form, kept.preview)
    refused = await preview_chosen(api, kept)
    if is_htmx(request):
        # 200 even when refused: htmx swaps the card in only then, and the card says why.
        return render(
            request,
            "data_preview.html",
            file=kept,
            preview=kept.preview,
            refused=refused,
            words=WORDS,
        )
    if refused is not None:
        return render_mapping(request, kept, refused=refused, status_code=refused.status)
    return RedirectResponse(f"/data/files/{kept.id}", status_code=303)


@router.post("/data/files/{staged_id}/import")
async def import_file(
    request: Request,
    staged_id: StagedId,
    session: Ingester,
    form: CheckedForm,
    api: Api,
    staged: Staged,
) -> Response:
    """Send the kept file with the chosen mapping; then its progress page."""
    kept = kept_file(staged, session, staged_id)
    kept.choices = choices = form_choices(form, kept.preview)
    fields = {"mapping": json.dumps(choices["mapping"])}
    if choices["timezone"]:
        fields["timezone"] = choices["timezone"]
    try:
        with open(kept.path, "rb") as content:
            accepted = await api.post(
                "ingest",
                "/v1/uploads",
                files={"file": (kept.filename, content)},
                data=fields,
                timeout=SEND_TIMEOUT,
            )
    except ApiError as refused:
        # The mapping (or timezone) does not work for this file: the form again, with the reason
        # and the preview of what was chosen, the file still kept.
        await preview_chosen(api, kept)
        return render_mapping(
            request, kept, refused=refused, status_code=refused.status, refused_step="import"
        )
    staged.discard(kept)
    target = f"/data/uploads/{accepted['upload_id']}"
    if choices["save_default"]:
        default = {"mapping": choices["mapping"], "timezone": choices["timezone"] or None}
        try:
            await api.put("ingest", "/v1/mappings/default", json=default)
            target += "?default=saved"
        except ApiError:
            target += "?default=refused"  # the upload goes on; its page says the default did not
    return RedirectResponse(target, status_code=303)


@router.get("/data/uploads/{upload_id}")
async def upload_page(
    request: Request,
    upload_id: UploadId,
    session: CurrentSession,
    api: Api,
    default: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    upload = await api.get("ingest", f"/v1/uploads/{upload_id}")
    return render(
        request,
        "data_upload.html",
        page="data",
        upload=upload,
        counts=upload_counts(upload),
        default=default,
        words=WORDS,
    )


@router.get("/data/uploads/{upload_id}/status")
async def upload_status(
    request: Request, upload_id: UploadId, session: CurrentSession, api: Api
) -> Response:
    """The progress card, which htmx swaps in every second until the upload is done or failed."""
    upload = await api.get("ingest", f"/v1/uploads/{upload_id}")
    if not is_htmx(request):
        return RedirectResponse(f"/data/uploads/{upload_id}", status_code=303)
    return render(
        request, "data_upload_status.html", upload=upload, counts=upload_counts(upload), words=WORDS
    )


@router.get("/data/uploads/{upload_id}/rejects.csv")
async def upload_rejects(upload_id: UploadId, session: CurrentSession, api: Api) -> Response:
    """The upload's rejected rows and why, as ingest wrote them, with the user's key."""
    upstream = await api.get_raw("ingest", f"/v1/uploads/{upload_id}/rejects.csv")
    return csv_download(upstream, f"rejects-{upload_id}.csv")


COUNTS = ("rows_read", "accepted", "rejected", "customers", "orders", "orders_published")


def upload_counts(upload: dict[str, Any]) -> dict[str, Any]:
    """An upload's counts as far as they go (None where not known yet): its result once done,
    else its progress, which grows while it runs and stays where it stopped when it fails."""
    progress = upload.get("progress") or {}
    result = upload.get("result") or {}
    counts: dict[str, Any] = {name: result.get(name, progress.get(name)) for name in COUNTS}
    reasons = result.get("rejected_by_reason", progress.get("rejected_by_reason")) or {}
    counts["rejected_by_reason"] = reasons
    if counts["rejected"] is None and reasons:
        counts["rejected"] = sum(reasons.values())
    if result:
        counts["orders"] = result.get("order_events")
    return counts


NO_FILE = "Choose a file to upload (CSV, TSV, Excel, Parquet or CDNOW text, gzip or not)."


def kept_file(staged: StagedFiles, session: Session, staged_id: str) -> StagedFile:
    kept = staged.find(session.id, staged_id)
    if kept is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="This file is no longer kept: the console keeps a file for an hour until it "
            "is imported. Upload it again from the Data page.",
        )
    return kept


async def preview(
    api: UserApi, kept: StagedFile, *, mapping: dict[str, str] | None, timezone: str | None
) -> dict[str, Any]:
    """Ingest's preview of the kept file: without a mapping, what it detects (or the tenant's
    saved mapping); with one, what that mapping reads."""
    fields = {}
    if mapping is not None:
        fields["mapping"] = json.dumps(mapping)
    if timezone:
        fields["timezone"] = timezone
    with open(kept.path, "rb") as content:
        return await api.post(
            "ingest",
            "/v1/uploads/preview",
            files={"file": (kept.filename, content)},
            data=fields,
            timeout=SEND_TIMEOUT,
        )


async def preview_chosen(api: UserApi, kept: StagedFile) -> ApiError | None:
    """Preview the kept file with the choices made on its form; on a refusal (a timezone ingest
    does not know, a malformed date pattern) the last preview stays and the refusal is returned."""
    try:
        kept.preview = await preview(
            api, kept, mapping=kept.choices["mapping"], timezone=kept.choices["timezone"]
        )
    except ApiError as refused:
        return refused
    return None


def form_choices(form: FormData, preview: dict[str, Any]) -> dict[str, Any]:
    """What the mapping form chose: canonical field → column (`map-<field>`; empty is "not in
    the file"), the date order, the timezone and whether to save the mapping as the default."""
    mapping: dict[str, str] = {}
    for field in preview.get("canonical_fields", []):
        column = form.get(f"map-{field['name']}")
        if isinstance(column, str) and column:
            mapping[field["name"]] = column
    date_format = form.get("date_format")
    if isinstance(date_format, str) and date_format:
        mapping["date_format"] = date_format
    timezone = form.get("timezone")
    return {
        "mapping": mapping,
        "timezone": timezone.strip() if isinstance(timezone, str) else "",
        "save_default": form.get("save_default") == "1",
    }


def render_mapping(
    request: Request,
    kept: StagedFile,
    *,
    refused: ApiError | None = None,
    refused_step: str = "preview",
    status_code: int = 200,
) -> Response:
    preview = kept.preview
    chosen = kept.choices or {
        "mapping": preview.get("mapping", {}),
        "timezone": preview.get("timezone", ""),
        "save_default": False,
    }
    return render(
        request,
        "data_mapping.html",
        status_code=status_code,
        page="data",
        file=kept,
        preview=preview,
        chosen=chosen,
        refused=refused,
        refused_step=refused_step,
        live=kept.size <= LIVE_PREVIEW_BYTES,
        words=WORDS,
    )


def words_when(value: str | None) -> str:
    """An API timestamp (ISO 8601, UTC) to the minute."""
    if not value:
        return "–"
    return value.replace("T", " ")[:16] + " UTC"


def words_instant(value: str | None) -> str:
    """A preview's order time (ISO 8601 in UTC) as a person reads it: `2010-12-01 08:45 UTC`."""
    if not value:
        return "–"
    text = value.replace("T", " ").removesuffix("+00:00")
    return text.removesuffix(":00") + " UTC" if len(text) == 19 else text


def words_value(value: float) -> str:
    """A preview's number as the import stores it, without a float's `.0`: 3, -6, 2.55, 1,250."""
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return f"{value:,}"


def words_reason(reason: str) -> str:
    """A reject reason code (`missing_customer_id`) as words."""
    return reason.replace("_", " ").capitalize()


def words_date_format(described: dict[str, Any] | None) -> str:
    if not described:
        return "no readable date column yet"
    order = described.get("order")
    text = {
        "day_first": "day first",
        "month_first": "month first",
        "iso": "ISO (year first)",
        "compact": "compact (yyyymmdd)",
        "given": "the pattern given",
        "native": "dates stored as dates",
    }.get(order, str(order))
    if described.get("pattern"):
        text += f" ({described['pattern']})"
    return text


WORDS = {
    "field": lambda name: FIELD_LABELS.get(name) or name.replace("_", " ").capitalize(),
    "layout": lambda layout: LAYOUTS.get(layout, layout) if layout else "not recognized",
    "delimiter": lambda d: "–" if d is None else DELIMITERS.get(d, repr(d)),
    "date_format": words_date_format,
    "date_orders": DATE_ORDERS,
    "reason": words_reason,
    "value": words_value,
    "when": words_when,
    "instant": words_instant,
}
