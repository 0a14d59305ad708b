"""`GET /v1/segments`: the tenant's segments with their revenue, risk and recommended action."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from retention_scoring.api.deps import State, champion_of, population_of
from retention_shared.auth import ReadCaller
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


@router.get("/segments")
async def segments(caller: ReadCaller, state: State) -> Segments:
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
