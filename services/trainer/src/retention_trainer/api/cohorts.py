"""`GET /v1/cohorts` and `GET /v1/cohorts.csv`: cohort retention of the caller's tenant.

Cohorts are the customers by period of their first purchase; see `retention_trainer.cohorts` for
what each metric counts. Both routes answer from `CohortCache`, recomputed only after the
tenant's lake data changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from retention_shared.auth import ReadCaller
from retention_shared.openapi_docs import text_response
from retention_shared.problems import problem_responses
from retention_shared.safe_text import spreadsheet_safe_frame
from retention_trainer.api.deps import CohortsDep
from retention_trainer.cohorts import Metric, Period, cells_between, cohort_rows

router = APIRouter(prefix="/v1", tags=["cohorts"])


class Cohort(BaseModel):
    cohort: str = Field(description="The cohort's period: `2010-12`, or `2011-Q1` for quarters.")
    start: date = Field(description="First day of the cohort's period (UTC).")
    size: int = Field(description="Customers whose first purchase is in the cohort's period.")
    # Counts stay integers; shares and money are floats.
    values: list[int] | list[float] = Field(
        description="The metric at age 0, 1, … (periods since the cohort's); a period not "
        "reached yet by the lake's last order is absent, not 0."
    )


class CohortMatrix(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "default",
                    "period": "month",
                    "metric": "customers",
                    "as_of": "2011-12-09T12:50:00Z",
                    "cohorts": [
                        {
                            "cohort": "2010-12",
                            "start": "2010-12-01",
                            "size": 948,
                            "values": [948, 362, 317],
                        }
                    ],
                    "max_age": 2,
                }
            ]
        }
    )

    tenant_id: str
    period: Period
    metric: Metric
    as_of: datetime | None = Field(description="The lake's last order time; null when empty.")
    cohorts: list[Cohort] = Field(description="Oldest first.")
    max_age: int = Field(description="The largest age of any cohort listed (0 when none).")


@dataclass(frozen=True)
class CohortQuery:
    period: Period
    metric: Metric
    first: date | None
    last: date | None


def cohort_query(
    period: Period = Period.MONTH,
    metric: Metric = Metric.CUSTOMERS,
    first: Annotated[
        date | None, Query(alias="from", description="Earliest cohort start (inclusive).")
    ] = None,
    last: Annotated[
        date | None, Query(alias="to", description="Latest cohort start (inclusive).")
    ] = None,
) -> CohortQuery:
    if first is not None and last is not None and first > last:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"field": "query.to", "problem": f"must not be before from ({first})"}],
        )
    return CohortQuery(period, metric, first, last)


CohortQueryDep = Annotated[CohortQuery, Depends(cohort_query)]


@router.get("/cohorts", responses=problem_responses(401, 403, 422))
async def cohorts(caller: ReadCaller, query: CohortQueryDep, cache: CohortsDep) -> CohortMatrix:
    """Per cohort (first-purchase period), the metric in each period since; JSON for a heatmap."""
    table = await cache.table(caller.tenant_id)
    cells = cells_between(table.cells[query.period], query.first, query.last)
    rows = cohort_rows(cells, query.metric).to_dicts()
    return CohortMatrix(
        tenant_id=caller.tenant_id,
        period=query.period,
        metric=query.metric,
        as_of=table.as_of,
        cohorts=[Cohort(**row) for row in rows],
        max_age=max((len(row["values"]) - 1 for row in rows), default=0),
    )


@router.get(
    "/cohorts.csv",
    response_class=Response,
    responses=text_response(
        "One row per cohort × age, as an attachment `cohorts-<period>-<metric>.csv`.",
        {"text/csv": "cohort,cohort_size,age,period,value\n2010-12,948,0,2010-12,948\n"},
        headers={
            "Content-Disposition": {
                "description": 'attachment; filename="cohorts-<period>-<metric>.csv"',
                "schema": {"type": "string"},
            }
        },
    )
    | problem_responses(401, 403, 422),
)
async def cohorts_csv(caller: ReadCaller, query: CohortQueryDep, cache: CohortsDep) -> Response:
    """The same cells, one row per cohort × age: cohort, cohort_size, age, period, value."""
    table = await cache.table(caller.tenant_id)
    cells = cells_between(table.cells[query.period], query.first, query.last)
    rows = cells.select(
        "cohort", cohort_size="size", age="age", period="period", value=query.metric.value
    )
    name = f"cohorts-{query.period.value}-{query.metric.value}.csv"
    return Response(
        spreadsheet_safe_frame(rows).write_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
