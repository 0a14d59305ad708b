"""The tenant's saved column mapping and timezone, used by uploads and `orders.raw`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from retention_ingest.api.deps import Store
from retention_ingest.api.uploads import ingest_error
from retention_ingest.dates import check_timezone
from retention_ingest.errors import IngestError
from retention_ingest.mapping import ColumnMapping
from retention_shared.auth import IngestCaller
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["mappings"])


class SavedMapping(BaseModel):
    # A misspelt key ("timezon") would otherwise be dropped without a word.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "mapping": {
                        "order_id": "Bestellung",
                        "customer_id": "Kunde",
                        "order_datetime": "Datum",
                        "product_id": "Artikel",
                        "quantity": "Menge",
                        "unit_price": "Preis",
                        "date_format": "day_first",
                    },
                    "timezone": "Europe/Berlin",
                }
            ]
        },
    )

    mapping: dict[str, Any] | None = Field(
        None, description="Canonical field → the file's column (required in a PUT)."
    )
    timezone: str | None = Field(None, description="IANA zone of naive timestamps.")


@router.put("/mappings/default", responses=problem_responses(401, 403, 413, 422))
async def save_mapping(body: SavedMapping, caller: IngestCaller, store: Store) -> SavedMapping:
    """Save the tenant's column mapping (and timezone) for uploads and `orders.raw` records in
    its own columns; answers what was saved."""
    if body.mapping is None:
        # A PUT without one would wipe the saved mapping; DELETE says that on purpose.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={
                "code": "invalid_mapping",
                "field": "mapping",
                "problem": "required: an object from canonical names to the file's columns",
            },
        )
    try:
        mapping = ColumnMapping.parse(body.mapping)
        timezone = None if body.timezone is None else check_timezone(body.timezone)
    except IngestError as error:
        raise ingest_error(error) from None
    store.save_mapping(caller.tenant_id, mapping, timezone)
    return await read_mapping(caller, store)


@router.delete(
    "/mappings/default",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403),
)
async def delete_mapping(caller: IngestCaller, store: Store) -> None:
    """Forget the tenant's mapping and timezone: files must then be a known layout again."""
    store.delete_mapping(caller.tenant_id)


@router.get("/mappings/default", responses=problem_responses(401, 403, 404))
async def read_mapping(caller: IngestCaller, store: Store) -> SavedMapping:
    """The tenant's saved mapping and timezone; 404 when none is saved."""
    mapping, timezone = store.mapping(caller.tenant_id)
    if mapping is None and timezone is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail={"field": "mapping", "problem": "no saved mapping"}
        )
    return SavedMapping(
        mapping=None if mapping is None else mapping.model_dump(exclude_none=True),
        timezone=timezone,
    )
