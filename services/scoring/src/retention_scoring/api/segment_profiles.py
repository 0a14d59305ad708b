"""`GET /v1/segments/{segment}/profile`: each feature's median and quartiles over the segment's
customers, to read one customer's features against their segment's."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import polars as pl
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.inputs import instant
from retention_scoring.api.routing import share_rows, shares
from retention_scoring.segment_profiles import (
    ProfileShare,
    merged_profile,
    profile_share,
    segment_profile,
)
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
    response_model=SegmentProfile,
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 404, 422, 503),
)
async def profile(
    segment: str, caller: ReadCaller, state: State, request: Request
) -> SegmentProfile | Response:
    """The quartiles of every feature over the customers the champion puts in `segment`, at
    the tenant clock (the values `GET /v1/customers/{id}/features` answers). Sharded
    (docs/scoring.md, "Sharding"), over every replica's members: exact while each replica has
    at most 1,025 of them, else each quartile within 1/1024 of its rank among the members."""
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
    asked = await shares(request, state)
    features, segments, as_of = _NO_FEATURES, _NO_SEGMENTS, None
    if population is not None:
        champion = population.champion
        features, segments = population.features, population.scores["segment"]
        as_of = from_microseconds(population.key[2])
        if (rows := share_rows(population.partitions, asked.mine)) is not None:
            features, segments = features.filter(rows), segments.filter(rows)
    if asked.wanted or asked.others:  # a share of a gathered profile, or the gatherer
        own = await asyncio.to_thread(profile_share, features, segments, segment)
        if asked.wanted:
            body = {"as_of": as_of and as_of.isoformat(), "share": own.to_json()}
            return Response(json.dumps(body), media_type="application/json")
        answers = [answer.json() for answer in asked.others]
        others = [ProfileShare.from_json(a["share"]) for a in answers]
        customers, spreads = await asyncio.to_thread(merged_profile, [own, *others])
        # Every replica moves features to the same tenant clock (the latest announced).
        instants = [as_of, *(instant(a["as_of"]) for a in answers)]
        as_of = max((t for t in instants if t is not None), default=None)
    elif population is None:
        customers, spreads = segment_profile(features, segments, segment)
    else:
        customers, spreads = await asyncio.to_thread(segment_profile, features, segments, segment)
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
