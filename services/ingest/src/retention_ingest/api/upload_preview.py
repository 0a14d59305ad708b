"""`POST /v1/uploads/preview`: what an upload of this file would read, before sending it.

Multipart like `POST /v1/uploads` (`file`, optional `mapping` JSON, optional `timezone`) and under
the same size limits; answers at once with `retention_ingest.preview.UploadPreview`. The file is
kept only while it is read: nothing is published and no upload is recorded.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from retention_ingest.api.deps import SettingsDep, Store
from retention_ingest.api.uploads import ingest_error, save_file
from retention_ingest.bounds import OrderBounds
from retention_ingest.dates import check_timezone
from retention_ingest.errors import IngestError
from retention_ingest.mapping import PartialMapping
from retention_ingest.preview import UploadPreview, preview_file
from retention_ingest.upload_limits import UploadLimits
from retention_shared.auth import IngestCaller
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["uploads"])


_MAPPED = {
    "order_id": "Bestellung",
    "customer_id": "Kunde",
    "order_datetime": "Datum",
    "product_id": "Artikel",
    "quantity": "Menge",
    "unit_price": "Preis",
}
_EXAMPLE = {
    "filename": "orders-2011.csv",
    "format": "csv",
    "layout": "mapping",
    "delimiter": ";",
    "date_format": {"order": "day_first", "pattern": "%d/%m/%Y %H:%M", "ambiguous": False},
    "columns": ["Bestellung", "Kunde", "Datum", "Artikel", "Menge", "Preis"],
    "mapping": _MAPPED,
    "mapping_source": "given",
    "canonical_fields": [{"name": "customer_id", "required": True, "description": "Who bought."}],
    "rows": [
        {
            "order_id": "536365",
            "customer_id": "17850",
            "order_datetime": "2010-12-01T08:26:00+00:00",
            "product_id": "85123A",
            "quantity": 6.0,
            "unit_price": 2.55,
        },
        {
            "order_id": "536366",
            "customer_id": None,
            "order_datetime": "2010-12-01T08:28:00+00:00",
            "product_id": "22633",
            "quantity": 6.0,
            "unit_price": 1.85,
        },
    ],
    "reasons": [None, "missing_customer_id"],
    "source_rows": [
        {
            "Bestellung": "536365",
            "Kunde": "17850.0",
            "Datum": "01/12/2010 08:26",
            "Artikel": "85123A",
            "Menge": "6",
            "Preis": "2,55",
        },
        {
            "Bestellung": "536366",
            "Kunde": "",
            "Datum": "01/12/2010 08:28",
            "Artikel": "22633",
            "Menge": "6",
            "Preis": "1,85",
        },
    ],
    "problems": [],
    "timezone": "Europe/London",
}


@router.post(
    "/uploads/preview",
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 413, 415, 422),
)
async def preview_upload(
    caller: IngestCaller,
    store: Store,
    settings: SettingsDep,
    file: Annotated[
        UploadFile, File(description="CSV, TSV, XLSX, Parquet or CDNOW text; gzip or not.")
    ],
    mapping: Annotated[
        str | None,
        Form(description="JSON: canonical name → column; may be incomplete (see `problems`)."),
    ] = None,
    timezone: Annotated[str | None, Form(description="IANA zone of naive timestamps.")] = None,
) -> UploadPreview:
    """The first rows as an upload would store them and why it would reject any (`reasons`), the
    detected layout, delimiter and date format, the mapping it would use and what keeps it from working (`problems`, still 200);
    an unknown format is 415 and a file over the limits 413, as for an upload."""
    saved_mapping, saved_timezone = store.mapping(caller.tenant_id)
    try:
        given = PartialMapping.parse(mapping) if mapping else None
        chosen_timezone = check_timezone(timezone or saved_timezone or settings.default_timezone)
    except IngestError as error:
        raise ingest_error(error) from None
    directory = settings.data_dir / "ingest" / "previews" / uuid.uuid4().hex
    directory.mkdir(parents=True)
    try:
        await asyncio.to_thread(save_file, file, directory / "file")
        return await asyncio.to_thread(
            preview_file,
            directory / "file",
            work_dir=directory / "work",
            filename=file.filename,
            given=given,
            saved=saved_mapping,
            timezone=chosen_timezone,
            limits=UploadLimits.from_settings(settings),
            bounds=OrderBounds.from_settings(settings),
        )
    except IngestError as error:
        raise ingest_error(error) from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)
