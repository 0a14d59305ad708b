"""`GET /v1/segments`: the tenant's segments with their revenue, risk and recommended action;
`GET /v1/segments/points`: a sample of its customers as recency/frequency/spend points."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.examples import SEGMENT_ROW
from retention_scoring.api.inputs import wants_csv
from retention_scoring.segment_points import POINTS_SCHEMA, sample_points
from retention_scoring.store import from_microseconds
from retention_shared.auth import ReadCaller
from retention_shared.openapi_docs import example_response, text_response
from retention_shared.problems import problem_responses
from retention_shared.safe_text import spreadsheet_safe_frame
from retention_shared.score_summaries import segment_table

router = APIRouter(prefix="/v1", tags=["segments"])


class SegmentRow(BaseModel):
    segment: str
    customers: int
    # Share of the tenant's net spend to date (negative totals count as 0).
    revenue_share: float
    mean_churn_probability: float | None
    revenue_at_risk: float
    predicted_ltv: float
    action: str


class Segments(BaseModel):
    model_version: str
    customers: int
    segments: list[SegmentRow]


_SEGMENTS_EXAMPLE = {
    "model_version": "kx3b2bq7ownflzaf",
    "customers": 4339,
    "segments": [SEGMENT_ROW],
}


@router.get(
    "/segments",
    responses=example_response(_SEGMENTS_EXAMPLE) | problem_responses(401, 403, 503),
)
async def segments(caller: ReadCaller, state: State) -> Segments:
    """Every segment of the champion with its customers, share of revenue, mean churn
    probability, revenue at risk, predicted LTV and recommended action."""
    champion = champion_of(state, caller.tenant_id)
    segmenter = champion.bundle.segmenter
    population = await population_of(state, caller.tenant_id)
    actions = dict(zip(segmenter.names, segmenter.actions, strict=True))
    if population is None:
        rows = [
            SegmentRow(
                segment=name,
                customers=0,
                revenue_share=0.0,
                mean_churn_probability=None,
                revenue_at_risk=0.0,
                predicted_ltv=0.0,
                action=action,
            )
            for name, action in actions.items()
        ]
        return Segments(model_version=champion.version, customers=0, segments=rows)
    table = segment_table(population.scores, population.features["monetary"], actions)
    return Segments(
        model_version=population.champion.version,
        customers=len(population),
        segments=[SegmentRow(**row) for row in table],
    )


MAX_POINTS = 10_000


class SegmentPoint(BaseModel):
    customer_id: str
    segment: str
    recency_days: float = Field(description="Days since the last purchase, at `as_of`.")
    frequency: float = Field(description="Purchase orders up to `as_of`.")
    monetary: float = Field(description="Net spend to date (cancellations netted).")


class SegmentPoints(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "kx3b2bq7ownflzaf",
                    "as_of": "2011-12-09T12:50:00Z",
                    "customers": 4339,
                    "segments": ["Champions", "At risk", "Lost"],
                    "points": [
                        {
                            "customer_id": "14646",
                            "segment": "Champions",
                            "recency_days": 1.0,
                            "frequency": 73.0,
                            "monetary": 279489.02,
                        }
                    ],
                }
            ]
        }
    )

    model_version: str
    as_of: datetime | None = Field(description="The tenant clock the features were moved to.")
    customers: int = Field(description="Customers scored; `points` holds a sample when more.")
    segments: list[str] = Field(description="The model's segments, in its order.")
    points: list[SegmentPoint] = Field(description="Ordered by customer id.")


@router.get(
    "/segments/points",
    response_model=SegmentPoints,
    responses=text_response(
        "The points: JSON, or CSV with `Accept: text/csv`.",
        {
            "text/csv": "customer_id,segment,recency_days,frequency,monetary\n14646,Champions,1.0,73.0,279489.02\n"
        },
    )
    | problem_responses(401, 403, 422, 503),
)
async def segment_points(
    request: Request,
    caller: ReadCaller,
    state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 2000,
) -> SegmentPoints | Response:
    """Up to `limit` customers with their segment, recency, frequency and net spend, for an RFM
    scatter: a deterministic sample (the smallest hashes of the customer ids) when there are
    more. JSON, or CSV with `Accept: text/csv` (the customers scored in `X-Total-Count`)."""
    champion = champion_of(state, caller.tenant_id)
    population = await population_of(state, caller.tenant_id)
    if population is None:
        points = pl.DataFrame(schema=POINTS_SCHEMA)
        as_of, customers = None, 0
    else:
        champion = population.champion
        points = sample_points(population.scores, population.features, limit)
        as_of, customers = from_microseconds(population.key[2]), len(population)
    if wants_csv(request):
        return Response(
            spreadsheet_safe_frame(points).write_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"X-Total-Count": str(customers)},
        )
    # Thousands of points: written straight from the frame (the shape is `SegmentPoints`, as the
    # schema says) instead of a pydantic object per point, validated and encoded again (~12 ms).
    head = SegmentPoints(
        model_version=champion.version,
        as_of=as_of,
        customers=customers,
        segments=list(champion.bundle.segmenter.names),
        points=[],
    ).model_dump_json()
    body = head[: -len("[]}")] + points.write_json() + "}"
    return Response(body, media_type="application/json")
