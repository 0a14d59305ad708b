"""`GET /v1/insights`: the tenant's key numbers, against the previous champion, and in words."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from fastapi import APIRouter
from pydantic import BaseModel, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.examples import SEGMENT_ROW
from retention_scoring.api.routing import ShardOnly
from retention_scoring.api.segments import SegmentRow
from retention_scoring.comparison import Comparison
from retention_scoring.insights import ACTIVE_DAYS, KpiName, Unit, kpis, revenue_at_risk_shares
from retention_scoring.narrative import narrate
from retention_scoring.store import from_microseconds
from retention_shared.auth import ReadCaller
from retention_shared.features import FEATURE_NAMES
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses
from retention_shared.score_summaries import segment_table

router = APIRouter(prefix="/v1", tags=["insights"])


class KpiView(BaseModel):
    name: KpiName
    label: str
    unit: Unit
    # null: retention_rate when nobody was active in the 90 days before the last 90.
    value: int | float | None
    # The value under the previous champion (same customers, same clock); null without one.
    previous: int | float | None
    # False: the model does not enter this number (`previous` equals `value`).
    model_dependent: bool


class InsightSegmentRow(SegmentRow):
    # Share of the tenant's revenue at risk in this segment.
    revenue_at_risk_share: float


class QuotedNumber(BaseModel):
    text: str = Field(description="The number as the sentence writes it.")
    path: str = Field(description="JSON Pointer (RFC 6901) to the value in this answer.")
    value: int | float


class NarrativeSentence(BaseModel):
    text: str
    numbers: list[QuotedNumber]


class Insights(BaseModel):
    tenant_id: str
    as_of: datetime | None = Field(description="The tenant clock; null before its first vector.")
    model_version: str
    previous_model_version: str | None
    # Why `previous` values are null although there is a previous champion.
    previous_problem: str | None
    active_days: int
    ltv_horizon_days: int
    kpis: list[KpiView]
    segments: list[InsightSegmentRow]
    narrative: list[NarrativeSentence]


def _empty_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    features = pl.DataFrame(schema={name: pl.Float64 for name in FEATURE_NAMES})
    scores = pl.DataFrame(
        schema={
            "segment": pl.String,
            "risk_band": pl.String,
            "churn_probability": pl.Float64,
            "revenue_at_risk": pl.Float64,
            "predicted_ltv": pl.Float64,
        }
    )
    return features, scores


_EXAMPLE = {
    "tenant_id": "default",
    "as_of": "2011-12-09T12:50:00Z",
    "model_version": "kx3b2bq7ownflzaf",
    "previous_model_version": None,
    "previous_problem": None,
    "active_days": 90,
    "ltv_horizon_days": 365,
    "kpis": [
        {
            "name": "revenue_at_risk",
            "label": "Revenue at risk",
            "unit": "currency",
            "value": 1203344.2,
            "previous": None,
            "model_dependent": True,
        }
    ],
    "segments": [{**SEGMENT_ROW, "revenue_at_risk_share": 0.15}],
    "narrative": [
        {
            "text": "1,203,344 of predicted revenue is at risk.",
            "numbers": [{"text": "1,203,344", "path": "/kpis/0/value", "value": 1203344.2}],
        }
    ],
}


@router.get("/insights", responses=example_response(_EXAMPLE) | problem_responses(401, 403, 503))
async def insights(caller: ReadCaller, state: State, _: ShardOnly) -> Insights:
    """KPIs at the tenant clock with their values under the previous champion, the segment table
    (as `GET /v1/segments`) and a short narrative whose every number is in this answer."""
    champion = champion_of(state, caller.tenant_id)  # 503 without a model, as every score route
    population = await population_of(state, caller.tenant_id)
    comparison = Comparison(state.champions.previous.version(caller.tenant_id), None, None)
    if population is None:
        features, scores = _empty_frames()
        table = state.store.table(caller.tenant_id)
        as_of = from_microseconds(state.populations.clock(table)) if table is not None else None
    else:
        features, scores = population.features, population.scores
        champion = population.champion
        as_of = from_microseconds(population.key[2])
        comparison = await state.comparisons.of(population)
    horizon = champion.bundle.ltv.horizon_days
    segmenter = champion.bundle.segmenter
    actions = dict(zip(segmenter.names, segmenter.actions, strict=True))
    rows = segment_table(scores, features["monetary"], actions)
    for row, share in zip(rows, revenue_at_risk_shares(rows), strict=True):
        row["revenue_at_risk_share"] = share
    comparable_money = comparison.ltv_horizon_days in (None, horizon)
    problem = comparison.problem
    if not comparable_money:
        problem = (
            f"the previous model predicts over {comparison.ltv_horizon_days} days and this one "
            f"over {horizon}: revenue at risk and predicted revenue are not compared"
        )
    figures = kpis(features, scores, comparison.scores, comparable_money)
    sentences = narrate(figures, rows, ACTIVE_DAYS, horizon)
    return Insights(
        tenant_id=caller.tenant_id,
        as_of=as_of,
        model_version=champion.version,
        previous_model_version=comparison.version,
        previous_problem=problem,
        active_days=ACTIVE_DAYS,
        ltv_horizon_days=horizon,
        kpis=[KpiView(**vars(kpi)) for kpi in figures],
        segments=[InsightSegmentRow(**row) for row in rows],
        narrative=[
            NarrativeSentence(
                text=s.text,
                numbers=[QuotedNumber(text=q.text, path=q.path, value=q.value) for q in s.numbers],
            )
            for s in sentences
        ],
    )
