"""Customers: features, one score with reasons, and the action lists CRM teams export."""

from __future__ import annotations

import asyncio
import io
import re
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

import httpx
import numpy as np
import polars as pl
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from retention_scoring import telemetry
from retention_scoring.api.deps import LIST_ERRORS, State, champion_of, population_of, segments_of
from retention_scoring.api.examples import SCORED_CUSTOMER
from retention_scoring.api.inputs import choices, wants_csv
from retention_scoring.api.routing import gather, owner_serves, share_of
from retention_scoring.api.views import ScoreView, score_view
from retention_scoring.errors import ScoringUnavailable, not_found, unprocessable
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
from retention_scoring.state import ScoringState
from retention_scoring.store import TenantTable, from_microseconds
from retention_shared.auth import ReadCaller
from retention_shared.events import RiskBand, ValueTier
from retention_shared.features import FEATURE_NAMES
from retention_shared.openapi_docs import example_response, text_response
from retention_shared.problems import problem_responses
from retention_shared.safe_text import spreadsheet_safe_frame

router = APIRouter(prefix="/v1", tags=["customers"])

MAX_LIST_LIMIT = 10_000


class FeaturesView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "default",
                    "customer_id": "14646",
                    "as_of": "2011-12-09T12:50:00Z",
                    "features": {"recency_days": 1.0, "frequency": 73.0, "monetary": 279489.02},
                    "received_as_of": "2011-12-08T12:12:00Z",
                    "computed_at": "2011-12-08T12:12:03Z",
                }
            ]
        }
    )

    tenant_id: str
    customer_id: str
    # The tenant clock the clock features were moved to (what the model scores).
    as_of: datetime
    features: dict[str, float]
    # The vector as the features service computed it: its own clock, and when.
    received_as_of: datetime
    computed_at: datetime


@router.get("/customers/{customer_id}/features", responses=problem_responses(401, 403, 404, 422))
async def customer_features(
    customer_id: str, caller: ReadCaller, state: State, request: Request
) -> FeaturesView:
    """The customer's features as the model scores them: moved to the tenant clock (`as_of`),
    next to the clock and time the features service computed them at."""
    await owner_serves(customer_id, caller.tenant_id, request, state)  # sharded: or its owner
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
        return population.feature_rows([position]).row(0, named=True)
    rows = np.asarray([row])
    features, history = table.features_frame(rows), table.history_frame(rows)
    moved = await asyncio.to_thread(at_clock, features, history, state.populations.clock(table))
    return moved.row(0, named=True)


# One customer's score as `GET /v1/customers/{id}/score` and `POST /v1/score` answer it.
SCORE_EXAMPLE = {
    **SCORED_CUSTOMER,
    "ltv_horizon_days": 365,
    "revenue_at_risk": 1761.16,
    "expected_orders": 2.4,
    "next_order_by": "2012-01-02",
    "reasons": {
        "churn": [
            {
                "feature": "recency_days",
                "text": "no order for 143 days, 3x longer than usual",
                "direction": "raises",
                "contribution": 0.84,
            }
        ],
        "ltv": [
            {
                "feature": "monetary",
                "text": "spent 27,940 so far",
                "direction": "raises",
                "contribution": 0.52,
            }
        ],
    },
    "features_as_of": "2011-12-09T12:50:00Z",
    "model_version": "kx3b2bq7ownflzaf",
}


@router.get(
    "/customers/{customer_id}/score",
    responses=example_response(SCORE_EXAMPLE) | problem_responses(401, 403, 404, 422, 503),
)
async def customer_score(
    customer_id: str, caller: ReadCaller, state: State, request: Request
) -> ScoreView:
    """The customer's churn probability and risk band, predicted LTV with its 80% interval and
    value tier, segment and recommended action, with the top reasons behind each score (503
    before the first model; 404 for an unknown customer and for another tenant's alike)."""
    await owner_serves(customer_id, caller.tenant_id, request, state)  # sharded: or its owner
    champion_of(state, caller.tenant_id)  # 503 before 404: without a model nobody is scored
    population = await population_of(state, caller.tenant_id)
    position = population.position(customer_id) if population is not None else None
    if population is None or position is None:
        raise not_found(customer_id)
    row = population.score_rows([position]).row(0, named=True)
    explanation = population.cached_explanation(customer_id) or await asyncio.to_thread(
        population.explanation, customer_id
    )
    telemetry.SCORES.labels(caller.tenant_id, row["risk_band"]).inc()
    telemetry.FEATURE_FRESHNESS.observe(
        max(0.0, time.time() - float(population.computed_at([position])[0]) / 1e6)
    )
    return score_view(row, explanation, population.champion)


class ListedCustomer(BaseModel):
    """One customer of a list: the score without its reasons (`/score` has those)."""

    customer_id: str
    churn_probability: float = Field(description="Probability of no order in the horizon.")
    risk_band: RiskBand
    predicted_ltv: float = Field(description="Predicted spend over the LTV horizon.")
    ltv_low: float = Field(description="10% quantile of the predicted LTV.")
    ltv_high: float = Field(description="90% quantile of the predicted LTV.")
    value_tier: ValueTier
    segment: str
    action: str = Field(description="The segment's recommended action.")
    revenue_at_risk: float = Field(description="churn_probability × predicted_ltv.")
    expected_orders: float | None = Field(
        None, description="Expected purchase orders over the churn horizon."
    )
    next_order_by: date | None = Field(
        None,
        description="Date by which the customer has a 50% chance of having ordered again; null "
        "when that chance stays below 50% within a year.",
    )
    features_as_of: datetime = Field(description="The tenant clock the features were moved to.")


_LISTED_EXAMPLE = {
    **SCORED_CUSTOMER,
    "revenue_at_risk": 1761.16,
    "expected_orders": 2.4,
    "next_order_by": "2012-01-02",
    "features_as_of": "2011-12-09T12:50:00+00:00",
}


class CustomerList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customers": [_LISTED_EXAMPLE],
                    "total": 112,
                    "next_cursor": "eyJ2IjogMTc2MS4xNiwgImMiOiAiMTQ2NDYiLCAicSI6ICI1ZTk2In0",
                    "model_version": "retention-default:kx3b2bq7ownflzaf",
                }
            ]
        }
    )

    customers: list[ListedCustomer]
    total: int = Field(description="Customers matching the filters, over all pages.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters and sort) for the next page; null "
        "on the last page."
    )
    model_version: str


class ListFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


_CSV_EXAMPLE = (
    ",".join(LIST_COLUMNS)
    + "\n14646,0.71,high,2480.5,1210.0,3975.2,VIP,At risk,"
    + "Reach out personally with a tailored win-back offer now.,1761.16,2.4,2012-01-02,"
    + "2011-12-09T12:50:00+00:00\n"
)
_LIST_CSV = text_response(
    "A page of the list: JSON, or CSV (`format=csv` or `Accept: text/csv`) with the same columns "
    "as a customer of the JSON, a header row on every page.",
    {"text/csv": _CSV_EXAMPLE},
    headers={
        "X-Total-Count": {
            "description": "CSV only: customers matching the filters, over all pages.",
            "schema": {"type": "integer"},
        },
        "X-Next-Cursor": {
            "description": "CSV only: the `cursor` of the next page; absent on the last.",
            "schema": {"type": "string"},
        },
        "Content-Disposition": {
            "description": 'CSV only: `attachment; filename="customers-<tenant>-<date>.csv"`.',
            "schema": {"type": "string"},
        },
    },
)
_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": CustomerList, **_LIST_CSV[200]},
    **LIST_ERRORS,
}


def _filters(
    risk_band: list[str] | None,
    value_tier: list[str] | None,
    ranges: dict[str, float | date | None],
) -> Filters:
    bands = choices(risk_band, RiskBand, "query.risk_band")
    tiers = choices(value_tier, ValueTier, "query.value_tier")
    filters = Filters(
        risk_bands=tuple(b.value for b in bands) if bands else None,
        value_tiers=tuple(t.value for t in tiers) if tiers else None,
        **ranges,  # type: ignore[arg-type]
    )
    for field, problem in range_problems(filters):
        raise unprocessable(f"query.{field}", problem)
    return filters


def _list_query(filters: Filters, sort: SortKey, limit: int, cursor: str | None) -> ListQuery:
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor, filters, sort)
        except CursorError as exc:
            raise unprocessable("cursor", str(exc)) from None
    return ListQuery(filters=filters, sort=sort, limit=limit, after=after)


_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def csv_filename(tenant_id: str, day: date) -> str:
    """`customers-<tenant>-<date>.csv`; a tenant id may hold anything printable (quotes, `/`,
    non-ASCII), none of which may reach a header or a file name, so those become `_`."""
    return f"customers-{_UNSAFE_IN_FILENAME.sub('_', tenant_id)}-{day.isoformat()}.csv"


# The JSON schema through `responses` rather than `response_model`: the page is built as a
# `CustomerList` already, and FastAPI would validate its thousands of rows a second time.
@router.get("/customers", response_model=None, responses=_LIST_RESPONSES)
async def customer_list(
    request: Request,
    caller: ReadCaller,
    state: State,
    segment: Annotated[
        list[str] | None,
        Query(
            description="One or more segments: `At risk`, `At risk,Champions`, or the "
            "parameter repeated. A value that is a whole segment name is not split.",
            examples=["At risk,Champions"],
        ),
    ] = None,
    risk_band: Annotated[
        list[str] | None,
        Query(description="One or more bands: `high`, `high,medium`.", examples=["high"]),
    ] = None,
    value_tier: Annotated[
        list[str] | None,
        Query(description="One or more tiers: `VIP`, `High,VIP`.", examples=["High,VIP"]),
    ] = None,
    min_ltv: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_ltv: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    min_churn: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    max_churn: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    min_orders: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_orders: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    next_order_from: Annotated[
        date | None,
        Query(description="Only customers whose `next_order_by` is on or after this date."),
    ] = None,
    next_order_to: Annotated[
        date | None,
        Query(description="Only customers whose `next_order_by` is on or before this date."),
    ] = None,
    sort: SortKey = SortKey.REVENUE_AT_RISK,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page.")
    ] = None,
    list_format: Annotated[
        ListFormat | None,
        Query(
            alias="format",
            description="`csv` or `json`; without it, `Accept: text/csv` asks for CSV.",
        ),
    ] = None,
) -> CustomerList | Response:
    """Customers matching the filters, best first by `sort`; JSON, or CSV with `format=csv` or
    `Accept: text/csv` (as an attachment named `customers-<tenant>-<date>.csv`).

    `segment`, `risk_band` and `value_tier` take one value, a comma list or repeated
    parameters (any of them matches). `min_ltv`/`max_ltv` and `min_churn`/`max_churn` bound the
    predicted LTV and the churn probability, `min_orders`/`max_orders` the expected orders and
    `next_order_from`/`next_order_to` the next-order date, both ends included (a customer
    without a next-order date matches neither date bound). The next page: the same query
    with `cursor` = the previous answer's `next_cursor` (in CSV, the `X-Next-Cursor` header); a
    cursor belongs to its filters and sort, and is refused with any other.
    """
    ranges = {
        "min_ltv": min_ltv,
        "max_ltv": max_ltv,
        "min_churn": min_churn,
        "max_churn": max_churn,
        "min_orders": min_orders,
        "max_orders": max_orders,
        "next_order_from": next_order_from,
        "next_order_to": next_order_to,
    }
    filters = _filters(risk_band, value_tier, ranges)
    champion = champion_of(state, caller.tenant_id)
    # Segment names are the model's: known only once there is one.
    segments = segments_of(champion, segment, "query.segment")
    query = _list_query(replace(filters, segments=segments), sort, limit, cursor)
    population = await population_of(state, caller.tenant_id)
    share, others = share_of(request, state), list[httpx.Response]()
    if state.sharding is not None and share is None:  # a sharded replica asked by a client
        share, others = await gather(request, state)
    if population is None:
        page_rows, total, next_cursor = [], 0, None
        frame = None
    else:
        scores = population.scores
        if share is not None:  # only the partitions this replica answers for
            scores = scores.filter(pl.Series(np.isin(population.partitions, list(share))))
        page = list_page(scores, query)
        frame = page.rows
        page_rows, total = frame.to_dicts(), page.total
        next_cursor = encode_cursor(page.next_after, query) if page.next_after else None
        champion = population.champion
    if others:
        page_rows, total, next_cursor = merge_pages(page_rows, total, next_cursor, others, query)
        frame = listed_frame(page_rows) if page_rows else None
    csv_asked = list_format is ListFormat.CSV or (list_format is None and wants_csv(request))
    if csv_asked:
        filename = csv_filename(caller.tenant_id, datetime.now(UTC).date())
        headers = {
            "X-Total-Count": str(total),
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        return Response(list_csv(frame), media_type="text/csv; charset=utf-8", headers=headers)
    return CustomerList(
        customers=[ListedCustomer(**row) for row in page_rows],
        total=total,
        next_cursor=next_cursor,
        model_version=champion.version,
    )


def merge_pages(
    rows: list[dict[str, Any]],
    total: int,
    next_cursor: str | None,
    others: list[httpx.Response],
    query: ListQuery,
) -> tuple[list[dict[str, Any]], int, str | None]:
    """This replica's page and the other replicas' pages of the same query (each over its own
    partitions) → the page one replica holding everyone would answer: the best `limit` rows of
    the union in the list's order, the totals summed, a cursor after the last row kept."""
    merged = [ListedCustomer(**row).model_dump() for row in rows]
    more = next_cursor is not None
    for answer in others:
        body = answer.json()
        merged.extend(ListedCustomer(**row).model_dump() for row in body["customers"])
        total += body["total"]
        more = more or body["next_cursor"] is not None
    merged.sort(key=partial(_list_order, query.sort))
    more = more or len(merged) > query.limit
    page = merged[: query.limit]
    after = (page[-1][query.sort.value], page[-1]["customer_id"]) if page and more else None
    return page, total, encode_cursor(after, query) if after else None


def _list_order(sort: SortKey, row: dict[str, Any]) -> tuple[Any, ...]:
    """`list_page`'s order: largest first (polars puts nulls first), ties by customer id."""
    if sort is SortKey.CUSTOMER_ID:
        return (row["customer_id"],)
    value = row[sort.value]
    return (value is not None, -(value or 0.0), row["customer_id"])


def listed_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Merged list rows as `list_page` frames them (for the CSV)."""
    frame = pl.from_dicts(rows).select(LIST_COLUMNS)
    return frame.with_columns(
        pl.col("features_as_of").cast(pl.Datetime("us", "UTC")),
        pl.col("next_order_by").cast(pl.Date),
    )


def list_csv(frame: pl.DataFrame | None) -> str:
    """A page of the list as CSV, a header row first (also for an empty page)."""
    if frame is None:
        return ",".join(LIST_COLUMNS) + "\n"
    buffer = io.StringIO()
    text = frame.with_columns(
        pl.col("features_as_of").dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z"),
        pl.col("next_order_by").dt.to_string("%Y-%m-%d"),
    )
    # Customer ids come from upstream systems: `=cmd|...` must stay text in a spreadsheet.
    spreadsheet_safe_frame(text).write_csv(buffer)
    return buffer.getvalue()
