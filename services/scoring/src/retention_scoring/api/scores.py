"""`POST /v1/score`: many customers at once, by id or by raw feature vectors."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import polars as pl
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from retention_scoring import telemetry
from retention_scoring.api.customers import SCORE_EXAMPLE
from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.api.inputs import CustomerId, FeatureValue
from retention_scoring.api.routing import FORWARDED_BY, Forwarded, forward, response_of
from retention_scoring.api.views import ScoreView, score_view
from retention_scoring.champions import LoadedChampion
from retention_scoring.errors import unavailable, unprocessable
from retention_scoring.scoring import explain, score_customers
from retention_scoring.shards import Forward, NoOwner
from retention_scoring.state import ScoringState
from retention_shared.auth import ReadCaller
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["scores"])

SCORE_NUMBERS = (
    "churn_probability",
    "predicted_ltv",
    "ltv_low",
    "ltv_high",
    "revenue_at_risk",
    "expected_orders",
)


class FeatureVector(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId | None = None
    features: dict[str, FeatureValue]


class ScoreRequest(BaseModel):
    """Either `customer_ids` (scored with their current features at the tenant clock) or
    `customers` (raw feature vectors, scored as given)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"customer_ids": ["14646", "17850"], "include_reasons": True},
                {
                    "customers": [
                        {
                            "customer_id": "what-if-1",
                            "features": {"recency_days": 30.0, "frequency": 4.0},
                        }
                    ],
                    "include_reasons": False,
                },
            ]
        },
    )

    customer_ids: list[CustomerId] | None = Field(None, min_length=1)
    customers: list[FeatureVector] | None = Field(None, min_length=1)
    include_reasons: StrictBool = True

    @model_validator(mode="after")
    def _exactly_one(self) -> ScoreRequest:
        if (self.customer_ids is None) == (self.customers is None):
            raise ValueError("send exactly one of customer_ids or customers")
        return self


class ScoreResult(BaseModel):
    customer_id: str | None
    found: bool
    score: ScoreView | None = None
    problem: str | None = None


class ScoreResponse(BaseModel):
    model_version: str
    results: list[ScoreResult]


def _vectors_frame(vectors: list[FeatureVector], names: tuple[str, ...]) -> pl.DataFrame:
    known = set(names)
    for i, vector in enumerate(vectors):
        for name in names:
            if name not in vector.features:
                raise unprocessable(f"customers.{i}.features.{name}", "missing")
        for name in vector.features:
            if name not in known:
                raise unprocessable(f"customers.{i}.features.{name}", "not a feature of the model")
    return pl.DataFrame(
        {
            "customer_id": pl.Series([v.customer_id for v in vectors], dtype=pl.String),
            **{n: pl.Series([v.features[n] for v in vectors], dtype=pl.Float64) for n in names},
        }
    )


def _check_finite(scores: pl.DataFrame) -> None:
    """422 for a vector the model cannot give a number for (no combination of bounded values
    is known to, but a 422 naming it beats a 500 if one does)."""
    values = scores.select(SCORE_NUMBERS).to_numpy()
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        raise unprocessable(
            f"customers.{int(bad[0])}.features", "the model gives no finite score for these values"
        )


_EXAMPLE = {
    "model_version": "kx3b2bq7ownflzaf",
    "results": [
        {"customer_id": "14646", "found": True, "score": SCORE_EXAMPLE, "problem": None},
        {"customer_id": "00000", "found": False, "score": None, "problem": "no customer '00000'"},
    ],
}


@router.post(
    "/score",
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 413, 422, 503),
)
async def score_many(
    body: ScoreRequest, caller: ReadCaller, state: State, request: Request
) -> ScoreResponse:
    """Many customers at once: by id (their current features at the tenant clock; an unknown
    id is a result with `found: false`) or as raw feature vectors scored as given (a what-if).
    More than `RETENTION_MAX_SCORES_PER_REQUEST` customers is a 413."""
    limit = state.settings.max_scores_per_request
    field = "customer_ids" if body.customer_ids is not None else "customers"
    count = len(body.customer_ids or body.customers or [])
    if count > limit:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            detail={"field": field, "problem": f"{count} customers; at most {limit} per request"},
        )
    champion = champion_of(state, caller.tenant_id)
    if body.customers is not None:
        frame = _vectors_frame(body.customers, champion.bundle.feature_names)
        # Tiers against the tenant's own population (a batch alone when it has no customers).
        population = state.populations.latest(caller.tenant_id) or await population_of(
            state, caller.tenant_id
        )
        cutoffs = population.cutoffs if population is not None else None
        scores = await asyncio.to_thread(score_customers, champion.bundle, frame, cutoffs)
        _check_finite(scores)
        explanations = (
            await asyncio.to_thread(explain, champion.bundle, frame)
            if body.include_reasons
            else [None] * frame.height
        )
        results = []
        for row, explanation in zip(scores.to_dicts(), explanations, strict=True):
            telemetry.SCORES.labels(caller.tenant_id, row["risk_band"]).inc()
            results.append(
                ScoreResult(
                    customer_id=row["customer_id"],
                    found=True,
                    score=score_view(row, explanation, champion),
                )
            )
        return ScoreResponse(model_version=champion.version, results=results)

    ids = body.customer_ids or []
    if state.sharding is not None and FORWARDED_BY not in request.headers:
        return await _scattered(ids, body.include_reasons, caller.tenant_id, state, request)
    return await _by_id(ids, body.include_reasons, caller.tenant_id, state, champion)


async def _scattered(
    ids: list[str], include_reasons: bool, tenant_id: str, state: ScoringState, request: Request
) -> ScoreResponse:
    """A sharded replica's batch: each owner scores its customers (one request per owner),
    the results come back in the order asked."""
    sharding = state.sharding
    assert sharding is not None
    groups: dict[str | None, list[str]] = {}
    held = sharding.held()
    for customer_id in ids:
        partition = sharding.partition_of(tenant_id, customer_id)
        route = sharding.membership.route(partition, sharding.replica_id)
        if isinstance(route, NoOwner) and partition not in held:
            raise unavailable(f"no scoring replica serves partition {partition} yet")
        groups.setdefault(route.url if isinstance(route, Forward) else None, []).append(customer_id)
    answers: dict[str, ScoreResult] = {}
    version = None
    for url, group in groups.items():
        if url is None:  # this replica's own (or nobody's yet: answered as not found here)
            answer = await _by_id(group, include_reasons, tenant_id, state, None)
        else:
            body = {"customer_ids": group, "include_reasons": include_reasons}
            try:
                forwarded = await forward(request, sharding, url, content=json.dumps(body))
            except httpx.HTTPError as exc:
                raise unavailable(f"a scoring replica did not answer: {exc!r}") from None
            if forwarded.status_code != 200:
                raise Forwarded(response_of(forwarded))
            answer = ScoreResponse.model_validate_json(forwarded.content)
        version = version or answer.model_version
        answers.update(zip(group, answer.results, strict=True))  # answered in the order asked
    return ScoreResponse(
        model_version=version or champion_of(state, tenant_id).version,
        results=[answers[customer_id] for customer_id in ids],
    )


async def _by_id(
    ids: list[str],
    include_reasons: bool,
    tenant_id: str,
    state: ScoringState,
    champion: LoadedChampion | None,
) -> ScoreResponse:
    champion = champion or champion_of(state, tenant_id)
    population = await population_of(state, tenant_id)
    positions = [population.position(c) if population is not None else None for c in ids]
    found = np.asarray([p for p in positions if p is not None], dtype=np.int64)
    results = []
    if population is None or len(found) == 0:
        return ScoreResponse(
            model_version=champion.version,
            results=[
                ScoreResult(customer_id=c, found=False, problem=f"no customer {c!r}") for c in ids
            ],
        )
    rows = population.score_rows(found).to_dicts()
    computed_us = population.computed_at(found)
    explanations = (
        await asyncio.to_thread(population.explanations, found)
        if include_reasons
        else [None] * len(found)
    )
    version = population.champion.version
    now = time.time()
    scored = iter(zip(rows, explanations, computed_us.tolist(), strict=True))
    for customer_id, position in zip(ids, positions, strict=True):
        if position is None:
            results.append(
                ScoreResult(
                    customer_id=customer_id, found=False, problem=f"no customer {customer_id!r}"
                )
            )
            continue
        row, explanation, at = next(scored)
        telemetry.SCORES.labels(tenant_id, row["risk_band"]).inc()
        telemetry.FEATURE_FRESHNESS.observe(max(0.0, now - at / 1e6))
        results.append(
            ScoreResult(
                customer_id=customer_id,
                found=True,
                score=score_view(row, explanation, population.champion),
            )
        )
    return ScoreResponse(model_version=version, results=results)
