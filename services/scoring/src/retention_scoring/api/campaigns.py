"""`POST /v1/campaigns/plan`: whom to contact for a retention budget (`retention_shared.campaigns`);
JSON, or with `Accept: text/csv` the plan's whole contact list."""

from __future__ import annotations

import io
from enum import StrEnum
from typing import Annotated

import httpx
import numpy as np
import polars as pl
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from retention_scoring.api.deps import State, champion_of, check_segment, population_of
from retention_scoring.api.inputs import MIN_MONEY, FiniteNumber, wants_csv
from retention_scoring.api.routing import share_rows, shares
from retention_scoring.errors import unprocessable
from retention_scoring.lists import Filters, filter_scores, range_problems
from retention_shared.auth import ReadCaller
from retention_shared.campaigns import CampaignPlan, CampaignRequest, Scenario, plan_campaign
from retention_shared.events import RiskBand, ValueTier
from retention_shared.openapi_docs import text_response
from retention_shared.problems import problem_responses
from retention_shared.safe_text import spreadsheet_safe_frame

router = APIRouter(prefix="/v1", tags=["campaigns"])

MAX_CONTACTS_LISTED = 10_000


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value


# One value or a list: any of them matches.
Bands = Annotated[list[RiskBand], BeforeValidator(_listed), Field(min_length=1)]
Tiers = Annotated[list[ValueTier], BeforeValidator(_listed), Field(min_length=1)]


class CampaignFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment: str | None = Field(None, max_length=256)
    risk_band: Bands | None = None
    value_tier: Tiers | None = None
    min_ltv: Annotated[FiniteNumber | None, Field(ge=0)] = None
    max_ltv: Annotated[FiniteNumber | None, Field(ge=0)] = None
    min_churn: Annotated[FiniteNumber | None, Field(ge=0, le=1)] = None
    max_churn: Annotated[FiniteNumber | None, Field(ge=0, le=1)] = None


class CampaignBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "budget": 2000.0,
                    "cost_per_contact": 5.0,
                    "save_rate": 0.25,
                    "discount": 0.1,
                    "margin": 0.4,
                    "filters": {"risk_band": ["high", "medium"], "min_ltv": 100.0},
                    "contacts_limit": 100,
                }
            ]
        },
    )

    budget: Annotated[FiniteNumber, Field(ge=0)]
    cost_per_contact: Annotated[
        FiniteNumber,
        Field(ge=MIN_MONEY, description="At least 0.000001 (money is exact to millionths)."),
    ]
    # Share of would-be churners a contact retains.
    save_rate: Annotated[FiniteNumber, Field(ge=0, le=1)]
    discount: Annotated[FiniteNumber, Field(ge=0, lt=1)] = 0.0
    margin: Annotated[
        FiniteNumber,
        Field(
            gt=0,
            le=1,
            description="Gross margin of a full-price sale (share of revenue left after the cost "
            "of goods); the discount comes out of it. 1, the default, counts revenue as profit.",
        ),
    ] = 1.0
    filters: CampaignFilters = Field(default_factory=CampaignFilters)
    # The plan and its totals cover every chosen contact; the answer lists the best this many.
    contacts_limit: Annotated[int, Strict(), Field(ge=1, le=MAX_CONTACTS_LISTED)] = 1000


class Contact(BaseModel):
    customer_id: str
    churn_probability: float
    predicted_ltv: float
    risk_band: RiskBand
    value_tier: ValueTier
    segment: str
    expected_net_value: float


class ScenarioView(BaseModel):
    save_rate: float
    expected_saved_revenue: float
    # What the saved revenue earns at the margin, the discount taken out, before the contacts' cost.
    expected_gross_profit: float
    cost: float
    net_profit: float
    roi: float | None

    @classmethod
    def of(cls, scenario: Scenario) -> ScenarioView:
        return cls(**scenario.__dict__)


_SCENARIO = {
    "save_rate": 0.25,
    "expected_saved_revenue": 41210.0,
    "expected_gross_profit": 14835.6,
    "cost": 2000.0,
    "net_profit": 12835.6,
    "roi": 6.42,
}


class CampaignPlanView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "kx3b2bq7ownflzaf",
                    "candidates": 1210,
                    "contacts_total": 400,
                    "contacts": [
                        {
                            "customer_id": "14646",
                            "churn_probability": 0.71,
                            "predicted_ltv": 2480.5,
                            "risk_band": "high",
                            "value_tier": "VIP",
                            "segment": "At risk",
                            "expected_net_value": 389.4,
                        }
                    ],
                    "expected": _SCENARIO,
                    "pessimistic": _SCENARIO | {"save_rate": 0.15},
                    "optimistic": _SCENARIO | {"save_rate": 0.35},
                }
            ]
        }
    )

    model_version: str
    candidates: int
    # Contacts in the plan; `contacts` lists the best `contacts_limit` of them.
    contacts_total: int
    contacts: list[Contact]
    expected: ScenarioView
    pessimistic: ScenarioView
    optimistic: ScenarioView


def _values(members: list[StrEnum] | None) -> tuple[str, ...] | None:
    return None if members is None else tuple(dict.fromkeys(m.value for m in members))


# The contact list as CSV: the columns of `Contact`, best contact first.
CSV_COLUMNS = tuple(Contact.model_fields)
_TEXT_COLUMNS = ("customer_id", "risk_band", "value_tier", "segment")


@router.post(
    "/campaigns/plan",
    # Explicit, so the JSON answer keeps its schema next to the CSV one.
    response_model=CampaignPlanView,
    responses=text_response(
        "The plan (JSON), or with `Accept: text/csv` every contact of it, best first.",
        {
            "text/csv": "customer_id,churn_probability,predicted_ltv,risk_band,value_tier,"
            "segment,expected_net_value\n14646,0.71,2480.5,high,VIP,At risk,389.4\n"
        },
        headers={
            "X-Total-Count": {
                "description": "CSV only: the contacts in the plan.",
                "schema": {"type": "integer"},
            },
            "X-Model-Version": {
                "description": "CSV only: the model that scored them.",
                "schema": {"type": "string"},
            },
        },
    )
    | problem_responses(401, 403, 413, 422, 503),
)
async def plan(
    body: CampaignBody, caller: ReadCaller, state: State, request: Request
) -> CampaignPlanView | Response:
    """The plan for a budget. With `Accept: text/csv`, every contact of the plan as CSV (best
    first; `contacts_limit` bounds only the JSON list), its size in `X-Total-Count`.

    Candidates of equal expected net value are taken in customer-id order. Sharded
    (docs/scoring.md, "Sharding"), each replica plans over its own customers and sends its
    chosen ones; the replica asked plans again over those: the plan one replica holding every
    customer makes."""
    champion = champion_of(state, caller.tenant_id)
    check_segment(champion, body.filters.segment, "filters.segment")
    campaign = CampaignRequest(
        budget=body.budget,
        cost_per_contact=body.cost_per_contact,
        save_rate=body.save_rate,
        discount=body.discount,
        margin=body.margin,
    )
    population = await population_of(state, caller.tenant_id)
    f = body.filters
    filters = Filters(
        segments=None if f.segment is None else (f.segment,),
        risk_bands=_values(f.risk_band),
        value_tiers=_values(f.value_tier),
        min_ltv=f.min_ltv,
        max_ltv=f.max_ltv,
        min_churn=f.min_churn,
        max_churn=f.max_churn,
    )
    for field, problem in range_problems(filters):
        raise unprocessable(f"filters.{field}", problem)
    asked = await shares(request, state)
    if population is not None:
        scores = population.scores
        if (rows := share_rows(population.partitions, asked.mine)) is not None:
            scores = scores.filter(rows)
        candidates = filter_scores(scores, filters)
        champion = population.champion
    else:
        candidates = None
    if candidates is None or candidates.is_empty():
        candidates = pl.DataFrame(schema=_SHARE_SCHEMA)
    result = _planned(candidates, campaign)
    if asked.wanted:  # a share of a gathered plan: its chosen candidates
        chosen = candidates[result.selected.tolist()].select(_SHARE_SCHEMA.names())
        return Response(
            chosen.cast(_SHARE_SCHEMA).write_json(),
            media_type="application/json",
            headers={SHARE_CANDIDATES: str(candidates.height)},
        )
    if asked.others:
        candidates, counted = _merged_candidates(candidates, result.selected, asked.others)
        result = _planned(candidates, campaign)
    else:
        counted = candidates.height
    if wants_csv(request):
        return Response(
            contacts_csv(_contacts(candidates, result.selected, result.expected_value)),
            media_type="text/csv; charset=utf-8",
            headers={
                "X-Total-Count": str(len(result.selected)),
                "X-Model-Version": champion.version,
            },
        )
    listed = result.selected[: body.contacts_limit]
    chosen = _contacts(candidates, listed, result.expected_value[: len(listed)])
    return CampaignPlanView(
        model_version=champion.version,
        candidates=counted,
        contacts_total=len(result.selected),
        contacts=[Contact(**row) for row in chosen.to_dicts()],
        expected=ScenarioView.of(result.expected),
        pessimistic=ScenarioView.of(result.pessimistic),
        optimistic=ScenarioView.of(result.optimistic),
    )


# A gathered share's candidates (before its plan chose among them).
SHARE_CANDIDATES = "X-Retention-Share-Candidates"
# What a share sends of each candidate it chose: what the plan and its contacts need.
_SHARE_SCHEMA = pl.Schema(
    {
        "customer_id": pl.String(),
        "churn_probability": pl.Float64(),
        "predicted_ltv": pl.Float64(),
        "risk_band": pl.String(),
        "value_tier": pl.String(),
        "segment": pl.String(),
    }
)


def _planned(candidates: pl.DataFrame, campaign: CampaignRequest) -> CampaignPlan:
    ids = candidates["customer_id"] if "customer_id" in candidates.columns else None
    return plan_campaign(
        candidates["churn_probability"].to_numpy(),
        candidates["predicted_ltv"].to_numpy(),
        campaign,
        ids_of=None if ids is None else (lambda rows: ids.gather(rows).to_numpy()),
    )


def _merged_candidates(
    candidates: pl.DataFrame, selected: np.ndarray, others: list[httpx.Response]
) -> tuple[pl.DataFrame, int]:
    """This replica's chosen candidates and every other share's: among them are the plan's
    (each share chose its best `capacity` by the same rule), and how many candidates in all."""
    frames = [candidates[selected.tolist()].select(_SHARE_SCHEMA.names()).cast(_SHARE_SCHEMA)]
    frames += [pl.DataFrame(answer.json(), schema=_SHARE_SCHEMA) for answer in others]
    counted = candidates.height + sum(int(a.headers[SHARE_CANDIDATES]) for a in others)
    return pl.concat(frames), counted


def _contacts(candidates: pl.DataFrame, rows: np.ndarray, value: np.ndarray) -> pl.DataFrame:
    if not len(rows):
        return pl.DataFrame(schema=dict.fromkeys(CSV_COLUMNS, pl.String))
    chosen = candidates[rows.tolist()].with_columns(
        expected_net_value=pl.Series(value, dtype=pl.Float64)
    )
    return chosen.select(CSV_COLUMNS).with_columns(pl.col(_TEXT_COLUMNS).cast(pl.String))


def contacts_csv(contacts: pl.DataFrame) -> str:
    """The contacts as CSV; ids and segment names come from outside, so a cell a spreadsheet
    would run as a formula (`=cmd|...`) stays text."""
    buffer = io.StringIO()
    spreadsheet_safe_frame(contacts).write_csv(buffer)
    return buffer.getvalue()
