"""`GET /v1/segments/migration`: how the caller's customers moved between segments, for a Sankey."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from retention_shared.auth import ReadCaller
from retention_shared.problems import problem_responses
from retention_trainer.api.deps import MigrationsDep
from retention_trainer.errors import ChampionUnreadable, NoChampion, NoOrders
from retention_trainer.migration_cache import MigrationAnswer
from retention_trainer.segment_migration import NOT_YET_A_CUSTOMER, InvalidRange, check_order

router = APIRouter(prefix="/v1", tags=["segments"])

# Exactly YYYY-MM-DD: `date.fromisoformat` also takes 20110910 and 2011-W36-6.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class MigrationFlow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description=f"Segment at `from` (or {NOT_YET_A_CUSTOMER!r}).")
    to: str = Field(description="Segment at `to`.")
    customers: int = Field(gt=0)
    revenue: float = Field(description="These customers' net spend to date at `to`.")


class SegmentMigrationResponse(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "default",
                    "model_version": "kx3b2bq7ownflzaf",
                    "from": "2011-09-10",
                    "to": "2011-12-09",
                    "segments": [NOT_YET_A_CUSTOMER, "Champions", "At risk"],
                    "flows": [
                        {"from": "Champions", "to": "At risk", "customers": 57, "revenue": 84210.5}
                    ],
                    "customers_at_from": 3912,
                    "customers_at_to": 4339,
                }
            ]
        },
    )

    tenant_id: str
    model_version: str = Field(description="The champion whose segmenter placed both ends.")
    from_: date = Field(alias="from")
    to: date
    segments: list[str] = Field(
        description=f"{NOT_YET_A_CUSTOMER!r} (no order at or before `from`), then the "
        "champion's segments in its order."
    )
    flows: list[MigrationFlow] = Field(description="Only pairs with customers.")
    customers_at_from: int
    customers_at_to: int


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise _unprocessable(field, f"not a date (YYYY-MM-DD): {value[:40]!r}") from None


def _unprocessable(field: str, problem: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[{"field": field, "problem": problem}]
    )


def _response(answer: MigrationAnswer) -> SegmentMigrationResponse:
    migration = answer.migration
    return SegmentMigrationResponse(
        tenant_id=answer.tenant_id,
        model_version=answer.model_version,
        from_=answer.start,
        to=answer.end,
        segments=list(migration.segments),
        flows=[
            MigrationFlow(from_=f.source, to=f.target, customers=f.customers, revenue=f.revenue)
            for f in migration.flows
        ],
        customers_at_from=migration.customers_at_start,
        customers_at_to=migration.customers_at_end,
    )


_ERRORS = problem_responses(401, 403, 409, 422, 503)
_ERRORS[409]["description"] = "No champion model yet, or no orders in the lake."
_ERRORS[503]["description"] = "The champion's bundle cannot be read."


@router.get(
    "/segments/migration",
    response_model=SegmentMigrationResponse,
    responses=_ERRORS,
)
async def segment_migration(
    caller: ReadCaller,
    migrations: MigrationsDep,
    from_: Annotated[
        str | None,
        Query(alias="from", description="YYYY-MM-DD; default: 90 days before `to`."),
    ] = None,
    to: Annotated[
        str | None,
        Query(description="YYYY-MM-DD, at most the latest order's day (the default)."),
    ] = None,
) -> SegmentMigrationResponse:
    """Each customer's segment at `from` and at `to` under the current champion's segmenter, on
    features computed from the orders up to each date; counted per (from, to) pair."""
    start, end = _day(from_, "from"), _day(to, "to")
    try:
        if start is not None and end is not None:
            check_order(start, end)
        answer = await migrations.migration(caller.tenant_id, start, end)
    except InvalidRange as error:
        raise _unprocessable(error.field, error.problem) from None
    except NoChampion:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={"field": "model", "problem": "no champion model yet; train one first"},
        ) from None
    except NoOrders:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail={"field": "lake", "problem": "no orders in the lake for this tenant"},
        ) from None
    except ChampionUnreadable as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={"field": "model", "problem": f"the champion's bundle cannot be read: {error}"},
        ) from None
    return _response(answer)
