"""`GET /v1/segments`: the tenant's segments with their revenue, risk and recommended action;
`GET /v1/segments/points`: a sample of its customers as recency/frequency/spend points."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import httpx
import numpy as np
import polars as pl
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.examples import SEGMENT_ROW
from retention_scoring.api.inputs import wants_csv
from retention_scoring.api.routing import ShardOnly, gather, share_of
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
async def segments(
    caller: ReadCaller, state: State, request: Request, response: Response
) -> Segments:
    """Every segment of the champion with its customers, share of revenue, mean churn
    probability, revenue at risk, predicted LTV and recommended action."""
    champion = champion_of(state, caller.tenant_id)
    segmenter = champion.bundle.segmenter
    population = await population_of(state, caller.tenant_id)
    actions = dict(zip(segmenter.names, segmenter.actions, strict=True))
    share, others = share_of(request, state), list[httpx.Response]()
    if state.sharding is not None and share is None:  # a sharded replica asked by a client
        share, others = await gather(request, state)
    if population is None:
        scores, monetary = None, pl.Series("monetary", [], dtype=pl.Float64)
        table = segment_table(pl.DataFrame(schema=_SEGMENT_SCHEMA), monetary, actions)
    else:
        scores, monetary = population.scores, population.features["monetary"]
        if share is not None:  # only the partitions this replica answers for
            mask = pl.Series(np.isin(population.partitions, list(share)))
            scores, monetary = scores.filter(mask), monetary.filter(mask)
        table = segment_table(scores, monetary, actions)
        champion = population.champion
    customers = scores.height if scores is not None else 0
    revenue = float(monetary.clip(lower_bound=0.0).sum())
    if others:
        table, customers = merge_segments(table, customers, revenue, others, list(actions))
    elif share is not None:  # a share of a gathered table: what the gatherer needs to merge
        response.headers[SHARE_REVENUE] = repr(revenue)
    return Segments(
        model_version=champion.version,
        customers=customers,
        segments=[SegmentRow(**row) for row in table],
    )


# A gathered share's net spend to date (negatives as 0): its rows' revenue shares are of this.
SHARE_REVENUE = "X-Retention-Share-Revenue"
_SEGMENT_SCHEMA = {
    "segment": pl.String,
    "churn_probability": pl.Float64,
    "revenue_at_risk": pl.Float64,
    "predicted_ltv": pl.Float64,
}


def merge_segments(
    table: list[dict[str, Any]],
    customers: int,
    revenue: float,
    others: list[httpx.Response],
    order: list[str],
) -> tuple[list[dict[str, Any]], int]:
    """Segment tables of disjoint shares → the table over all of them: counts and sums added,
    the revenue shares and mean churn recomputed from them."""
    sums: dict[str, dict[str, Any]] = {}
    shares = [(table, customers, revenue)] + [
        (a.json()["segments"], a.json()["customers"], float(a.headers[SHARE_REVENUE]))
        for a in others
    ]
    total_revenue = sum(r for _, _, r in shares)
    for rows, _, share_revenue in shares:
        for row in rows:
            into = sums.setdefault(
                row["segment"],
                {
                    "customers": 0,
                    "revenue": 0.0,
                    "churn": 0.0,
                    "at_risk": 0.0,
                    "ltv": 0.0,
                    "action": row["action"],
                },
            )
            into["customers"] += row["customers"]
            into["revenue"] += row["revenue_share"] * (share_revenue or 1.0)
            into["churn"] += (row["mean_churn_probability"] or 0.0) * row["customers"]
            into["at_risk"] += row["revenue_at_risk"]
            into["ltv"] += row["predicted_ltv"]
    merged = [
        {
            "segment": segment,
            "customers": s["customers"],
            "revenue_share": s["revenue"] / (total_revenue or 1.0),
            "mean_churn_probability": s["churn"] / s["customers"] if s["customers"] else None,
            "revenue_at_risk": s["at_risk"],
            "predicted_ltv": s["ltv"],
            "action": s["action"],
        }
        for segment, s in sums.items()
    ]
    # `segment_table`'s order: largest revenue at risk first, ties in the model's order.
    merged.sort(key=lambda r: (-r["revenue_at_risk"], order.index(r["segment"])))
    return merged, sum(c for _, c, _ in shares)


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
    _: ShardOnly,
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
