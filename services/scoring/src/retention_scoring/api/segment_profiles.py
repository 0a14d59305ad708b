"""`GET /v1/segments/{segment}/profile`: each feature's median and quartiles over the segment's
customers, to read one customer's features against their segment's."""

from __future__ import annotations

import asyncio
from datetime import datetime

import polars as pl
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.routing import ShardOnly
from retention_scoring.segment_profiles import segment_profile
from retention_scoring.store import from_microseconds
from retention_shared.auth import ReadCaller
from retention_shared.features import FEATURES_BY_NAME
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["segments"])

# A tenant with a champion but no customers yet: every segment is empty.
_NO_FEATURES = pl.DataFrame(schema={name: pl.Float64 for name in FEATURES_BY_NAME})
_NO_SEGMENTS = pl.Series("segment", [], dtype=pl.String)


class FeatureProfile(BaseModel):
    feature: str
    label: str = Field(description="The feature in words.")
    unit: str
    p25: float | None = Field(description="25th percentile; null for an empty segment.")
    median: float | None
    p75: float | None = Field(description="75th percentile; null for an empty segment.")


class SegmentProfile(BaseModel):
    model_version: str
    segment: str
    as_of: datetime | None = Field(description="The tenant clock the features were moved to.")
    customers: int = Field(description="Customers in the segment: what the quantiles are over.")
    features: list[FeatureProfile] = Field(description="Every model feature, in registry order.")


_EXAMPLE = {
    "model_version": "kx3b2bq7ownflzaf",
    "segment": "At risk",
    "as_of": "2011-12-09T12:50:00Z",
    "customers": 412,
    "features": [
        {
            "feature": "recency_days",
            "label": "Days since the last purchase",
            "unit": "days",
            "p25": 62.0,
            "median": 98.0,
            "p75": 141.0,
        }
    ],
}


@router.get(
    "/segments/{segment}/profile",
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 404, 422, 503),
)
async def profile(segment: str, caller: ReadCaller, state: State, _: ShardOnly) -> SegmentProfile:
    """The quartiles of every feature over the customers the champion puts in `segment`, at
    the tenant clock (the values `GET /v1/customers/{id}/features` answers)."""
    champion = champion_of(state, caller.tenant_id)
    if segment not in champion.bundle.segmenter.names:
        known = ", ".join(repr(name) for name in champion.bundle.segmenter.names)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={
                "field": "segment",
                "problem": f"no segment {segment!r}; this model's segments: {known}",
            },
        )
    population = await population_of(state, caller.tenant_id)
    if population is None:
        customers, spreads = segment_profile(_NO_FEATURES, _NO_SEGMENTS, segment)
        as_of = None
    else:
        champion = population.champion
        customers, spreads = await asyncio.to_thread(
            segment_profile, population.features, population.scores["segment"], segment
        )
        as_of = from_microseconds(population.key[2])
    return SegmentProfile(
        model_version=champion.version,
        segment=segment,
        as_of=as_of,
        customers=customers,
        features=[
            FeatureProfile(
                feature=s.feature,
                label=FEATURES_BY_NAME[s.feature].label,
                unit=FEATURES_BY_NAME[s.feature].unit,
                p25=s.p25,
                median=s.median,
                p75=s.p75,
            )
            for s in spreads
        ],
    )
