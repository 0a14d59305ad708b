"""Customers: features, one score with reasons, and the action lists CRM teams export."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import datetime
from typing import Annotated

import numpy as np
import polars as pl
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from retention_scoring import metrics
from retention_scoring.api.deps import (
    State,
    champion_of,
    check_segment,
    not_found,
    population_of,
    unprocessable,
)
from retention_scoring.api.inputs import choices, wants_csv
from retention_scoring.api.views import ScoreView, score_view
from retention_scoring.lists import (
    LIST_COLUMNS,
    CursorError,
    Filters,
    ListQuery,
    SortKey,
    decode_cursor,
    encode_cursor,
    list_page,
    range_problems,
)
from retention_scoring.scoring import at_clock
from retention_scoring.state import ScoringState, ScoringUnavailable
from retention_scoring.store import TenantTable, from_microseconds
from retention_shared.auth import ReadCaller
from retention_shared.events import RiskBand, ValueTier
from retention_shared.features import FEATURE_NAMES
from retention_shared.safe_text import spreadsheet_safe_frame

router = APIRouter(prefix="/v1", tags=["customers"])

MAX_LIST_LIMIT = 10_000


class FeaturesView(BaseModel):
    tenant_id: str
    customer_id: str
    # The tenant clock the clock features were moved to (what the model scores).
    as_of: datetime
    features: dict[str, float]
    # The vector as the features service computed it: its own clock, and when.
    received_as_of: datetime
    computed_at: datetime


@router.get("/customers/{customer_id}/features")
async def customer_features(customer_id: str, caller: ReadCaller, state: State) -> FeaturesView:
    table = state.store.table(caller.tenant_id)
    row = table.row(customer_id) if table is not None else None
    if table is None or row is None:
        raise not_found(customer_id)
    values = await _features_at_clock(state, caller.tenant_id, customer_id, table, row)
    return FeaturesView(
        tenant_id=caller.tenant_id,
        customer_id=customer_id,
        as_of=values["as_of"],
        features={name: values[name] for name in FEATURE_NAMES},
        received_as_of=from_microseconds(int(table.as_of_us[row])),
        computed_at=from_microseconds(int(table.computed_us[row])),
    )


async def _features_at_clock(
    state: ScoringState, tenant_id: str, customer_id: str, table: TenantTable, row: int
) -> dict:
    """The customer's features at the tenant clock: read from the scored population when there
    is one (moving the clock costs ~20 ms of polars planning even for one row), else moved here."""
    try:
        population = await state.population(tenant_id)
    except ScoringUnavailable:
        population = None
    position = population.position(customer_id) if population is not None else None
    if population is not None and position is not None:
        return population.features.row(position, named=True)
    rows = np.asarray([row])
    features, history = table.features_frame(rows), table.history_frame(rows)
    moved = await asyncio.to_thread(at_clock, features, history, state.populations.clock(table))
    return moved.row(0, named=True)


@router.get("/customers/{customer_id}/score")
async def customer_score(customer_id: str, caller: ReadCaller, state: State) -> ScoreView:
    champion_of(state, caller.tenant_id)  # 503 before 404: without a model nobody is scored
    population = await population_of(state, caller.tenant_id)
    position = population.position(customer_id) if population is not None else None
    if population is None or position is None:
        raise not_found(customer_id)
    row = population.scores.row(position, named=True)
    explanation = population.cached_explanation(customer_id) or await asyncio.to_thread(
        population.explanation, customer_id
    )
    metrics.SCORES.labels(caller.tenant_id, row["risk_band"]).inc()
    metrics.FEATURE_FRESHNESS.observe(
        max(0.0, time.time() - population.computed_us[position] / 1e6)
    )
    champion = population.champion
    return score_view(row, explanation, champion.version, champion.bundle.ltv.horizon_days)


class CustomerList(BaseModel):
    customers: list[dict]
    total: int
    next_cursor: str | None
    model_version: str


def _list_query(
    segment: str | None,
    risk_band: list[str] | None,
    value_tier: list[str] | None,
    ranges: dict[str, float | None],
    sort: SortKey,
    limit: int,
    cursor: str | None,
) -> ListQuery:
    bands = choices(risk_band, RiskBand, "query.risk_band")
    tiers = choices(value_tier, ValueTier, "query.value_tier")
    filters = Filters(
        segment=segment,
        risk_bands=tuple(b.value for b in bands) if bands else None,
        value_tiers=tuple(t.value for t in tiers) if tiers else None,
        **ranges,
    )
    for field, problem in range_problems(filters):
        raise unprocessable(f"query.{field}", problem)
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor, filters, sort)
        except CursorError as exc:
            raise unprocessable("cursor", str(exc)) from None
    return ListQuery(filters=filters, sort=sort, limit=limit, after=after)


@router.get("/customers", response_model=None)
async def customer_list(
    request: Request,
    caller: ReadCaller,
    state: State,
    segment: Annotated[str | None, Query(max_length=256)] = None,
    risk_band: Annotated[
        list[str] | None, Query(description="One or more bands: `high`, `high,medium`.")
    ] = None,
    value_tier: Annotated[
        list[str] | None, Query(description="One or more tiers: `VIP`, `High,VIP`.")
    ] = None,
    min_ltv: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_ltv: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    min_churn: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    max_churn: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    sort: SortKey = SortKey.REVENUE_AT_RISK,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
) -> CustomerList | Response:
    """Customers matching the filters, best first by `sort`; JSON, or CSV with `Accept: text/csv`.

    `risk_band` and `value_tier` take one value, a comma list or repeated parameters (any of
    them matches). `min_ltv`/`max_ltv` and `min_churn`/`max_churn` bound the predicted LTV and
    the churn probability, both ends included. The next page: the same query with `cursor` =
    the previous answer's `next_cursor` (in CSV, the `X-Next-Cursor` header).
    """
    ranges = {
        "min_ltv": min_ltv,
        "max_ltv": max_ltv,
        "min_churn": min_churn,
        "max_churn": max_churn,
    }
    query = _list_query(segment, risk_band, value_tier, ranges, sort, limit, cursor)
    champion = champion_of(state, caller.tenant_id)
    check_segment(champion, segment, "query.segment")
    population = await population_of(state, caller.tenant_id)
    if population is None:
        page_rows, total, next_cursor = [], 0, None
        frame = None
    else:
        page = list_page(population.scores, query)
        frame = page.rows
        page_rows, total = frame.to_dicts(), page.total
        next_cursor = encode_cursor(page.next_after, query) if page.next_after else None
        champion = population.champion
    if wants_csv(request):
        headers = {"X-Total-Count": str(total)}
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        return Response(_csv(frame), media_type="text/csv; charset=utf-8", headers=headers)
    return CustomerList(
        customers=page_rows,
        total=total,
        next_cursor=next_cursor,
        model_version=champion.version,
    )


def _csv(frame: pl.DataFrame | None) -> str:
    if frame is None:
        return ",".join(LIST_COLUMNS) + "\n"
    buffer = io.StringIO()
    text = frame.with_columns(pl.col("features_as_of").dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z"))
    # Customer ids come from upstream systems: `=cmd|...` must stay text in a spreadsheet.
    spreadsheet_safe_frame(text).write_csv(buffer)
    return buffer.getvalue()
