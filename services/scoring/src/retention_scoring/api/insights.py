"""`GET /v1/insights`: the tenant's key numbers, against the previous champion, and in words."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.examples import SEGMENT_ROW
from retention_scoring.api.routing import share_rows, shares
from retention_scoring.api.segments import SegmentRow
from retention_scoring.comparison import Comparison
from retention_scoring.insights import (
    ACTIVE_DAYS,
    KpiName,
    Totals,
    Unit,
    added,
    kpis_of,
    revenue_at_risk_shares,
    totals,
)
from retention_scoring.narrative import narrate
from retention_scoring.segment_merge import SegmentShare, merge_segments
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


@router.get(
    "/insights",
    response_model=Insights,
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 503),
)
async def insights(caller: ReadCaller, state: State, request: Request) -> Insights | Response:
    """KPIs at the tenant clock with their values under the previous champion, the segment table
    (as `GET /v1/segments`) and a short narrative whose every number is in this answer.
    Sharded (docs/scoring.md, "Sharding"), over every replica's customers: each sends its counts
    and sums, added here (the one-replica answer, up to the order floats are added in)."""
    champion = champion_of(state, caller.tenant_id)  # 503 without a model, as every score route
    population = await population_of(state, caller.tenant_id)
    asked = await shares(request, state)
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
        if (rows := share_rows(population.partitions, asked.mine)) is not None:
            features, scores = features.filter(rows), scores.filter(rows)
            if comparison.scores is not None:
                comparison = replace(comparison, scores=comparison.scores.filter(rows))
    horizon = champion.bundle.ltv.horizon_days
    segmenter = champion.bundle.segmenter
    actions = dict(zip(segmenter.names, segmenter.actions, strict=True))
    rows_table = segment_table(scores, features["monetary"], actions)
    counted = totals(features, scores, comparison.scores)
    if asked.wanted or asked.others:
        own = InsightsShare(
            as_of=as_of,
            totals=counted,
            segments=SegmentShare(
                rows_table,
                features.height,
                float(features["monetary"].clip(lower_bound=0.0).sum()),
            ),
            previous_problem=comparison.problem,
            previous_horizon_days=comparison.ltv_horizon_days,
        )
        if asked.wanted:  # a share of gathered insights: its counts and sums
            return Response(json.dumps(own.to_json()), media_type="application/json")
        everyone = [own, *(InsightsShare.from_json(a.json()) for a in asked.others)]
        counted = added([s.totals for s in everyone])
        rows_table, _ = merge_segments([s.segments for s in everyone], list(actions))
        # Every replica moves features to the same tenant clock (the latest announced).
        as_of = max((s.as_of for s in everyone if s.as_of is not None), default=None)
        # The previous champion is the same everywhere; a replica that could not score with it
        # says why (its totals then leave every previous number null).
        lacking = next((s for s in everyone if s.totals.before is None), None)
        if lacking is not None and counted.before is None:
            comparison = replace(
                comparison,
                scores=None,
                problem=lacking.previous_problem,
                ltv_horizon_days=lacking.previous_horizon_days,
            )
    for row, share in zip(rows_table, revenue_at_risk_shares(rows_table), strict=True):
        row["revenue_at_risk_share"] = share
    comparable_money = comparison.ltv_horizon_days in (None, horizon)
    problem = comparison.problem
    if not comparable_money:
        problem = (
            f"the previous model predicts over {comparison.ltv_horizon_days} days and this one "
            f"over {horizon}: revenue at risk and predicted revenue are not compared"
        )
    figures = kpis_of(counted, comparable_money)
    sentences = narrate(figures, rows_table, ACTIVE_DAYS, horizon)
    return Insights(
        tenant_id=caller.tenant_id,
        as_of=as_of,
        model_version=champion.version,
        previous_model_version=comparison.version,
        previous_problem=problem,
        active_days=ACTIVE_DAYS,
        ltv_horizon_days=horizon,
        kpis=[KpiView(**vars(kpi)) for kpi in figures],
        segments=[InsightSegmentRow(**row) for row in rows_table],
        narrative=[
            NarrativeSentence(
                text=s.text,
                numbers=[QuotedNumber(text=q.text, path=q.path, value=q.value) for q in s.numbers],
            )
            for s in sentences
        ],
    )


@dataclass(frozen=True)
class InsightsShare:
    """What a replica sends of gathered insights: its customers' counts and sums."""

    as_of: datetime | None
    totals: Totals
    segments: SegmentShare
    previous_problem: str | None
    previous_horizon_days: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat() if self.as_of is not None else None,
            "totals": self.totals.to_json(),
            "segments": vars(self.segments),
            "previous_problem": self.previous_problem,
            "previous_horizon_days": self.previous_horizon_days,
        }

    @classmethod
    def from_json(cls, data: dict) -> InsightsShare:
        as_of = data["as_of"]
        return cls(
            as_of=datetime.fromisoformat(as_of) if as_of is not None else None,
            totals=Totals.from_json(data["totals"]),
            segments=SegmentShare(**data["segments"]),
            previous_problem=data["previous_problem"],
            previous_horizon_days=data["previous_horizon_days"],
        )
