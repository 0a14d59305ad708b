"""`GET /v1/segments`: the tenant's segments with their revenue, risk and recommended action;
`GET /v1/segments/points`: a sample of its customers as recency/frequency/spend points."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import httpx
import polars as pl
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.examples import SEGMENT_ROW
from retention_scoring.api.inputs import instant, wants_csv
from retention_scoring.api.routing import share_rows, shares
from retention_scoring.segment_merge import SegmentShare, merge_segments
from retention_scoring.segment_points import POINTS_SCHEMA, merged_points, sample_points
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
async def segments(
    caller: ReadCaller, state: State, request: Request, response: Response
) -> Segments:
    """Every segment of the champion with its customers, share of revenue, mean churn
    probability, revenue at risk, predicted LTV and recommended action."""
    champion = champion_of(state, caller.tenant_id)
    segmenter = champion.bundle.segmenter
    population = await population_of(state, caller.tenant_id)
    actions = dict(zip(segmenter.names, segmenter.actions, strict=True))
    asked = await shares(request, state)
    if population is None:
        scores, monetary = None, pl.Series("monetary", [], dtype=pl.Float64)
        table = segment_table(pl.DataFrame(schema=_SEGMENT_SCHEMA), monetary, actions)
    else:
        scores, monetary = population.scores, population.features["monetary"]
        if (rows := share_rows(population.partitions, asked.mine)) is not None:
            scores, monetary = scores.filter(rows), monetary.filter(rows)
        table = segment_table(scores, monetary, actions)
        champion = population.champion
    customers = scores.height if scores is not None else 0
    revenue = float(monetary.clip(lower_bound=0.0).sum())
    if asked.others:
        own = SegmentShare(table, customers, revenue)
        table, customers = merge_segments([own, *map(segment_share, asked.others)], list(actions))
    elif asked.wanted:  # a share of a gathered table: what the gatherer needs to merge
        response.headers[SHARE_REVENUE] = repr(revenue)
    return Segments(
        model_version=champion.version,
        customers=customers,
        segments=[SegmentRow(**row) for row in table],
    )


# A gathered share's net spend to date (negatives as 0): its rows' revenue shares are of this.
SHARE_REVENUE = "X-Retention-Share-Revenue"


def segment_share(answer: httpx.Response) -> SegmentShare:
    """Another replica's share of `GET /v1/segments`."""
    body = answer.json()
    return SegmentShare(body["segments"], body["customers"], float(answer.headers[SHARE_REVENUE]))


_SEGMENT_SCHEMA = {
    "segment": pl.String,
    "churn_probability": pl.Float64,
    "revenue_at_risk": pl.Float64,
    "predicted_ltv": pl.Float64,
}


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
    more. JSON, or CSV with `Accept: text/csv` (the customers scored in `X-Total-Count`).
    Sharded (docs/scoring.md, "Sharding"), the sample of every replica's customers: each sends
    its own sample of `limit`, and the same rule picks among them (the one-replica answer)."""
    champion = champion_of(state, caller.tenant_id)
    population = await population_of(state, caller.tenant_id)
    asked = await shares(request, state)
    if population is None:
        points = pl.DataFrame(schema=POINTS_SCHEMA)
        as_of, customers = None, 0
    else:
        champion = population.champion
        scores, features = population.scores, population.features
        if (rows := share_rows(population.partitions, asked.mine)) is not None:
            scores, features = scores.filter(rows), features.filter(rows)
        points = sample_points(scores, features, limit)
        as_of, customers = from_microseconds(population.key[2]), scores.height
    if asked.others:
        answers = [answer.json() for answer in asked.others]
        points = merged_points(
            [points, *(pl.DataFrame(a["points"], schema=POINTS_SCHEMA) for a in answers)], limit
        )
        customers += sum(int(a["customers"]) for a in answers)
        # Every replica moves features to the same tenant clock (the latest announced).
        as_of = max(
            (t for t in [as_of, *(instant(a["as_of"]) for a in answers)] if t is not None),
            default=None,
        )
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
