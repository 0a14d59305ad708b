"""`POST /v1/campaigns/plan`: whom to contact for a retention budget (`retention_shared.campaigns`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from retention_scoring.api.deps import (
    State,
    champion_of,
    check_segment,
    population_of,
    unprocessable,
)
from retention_scoring.api.inputs import MIN_MONEY, FiniteNumber
from retention_scoring.lists import Filters, filter_scores, range_problems
from retention_shared.auth import ReadCaller
from retention_shared.campaigns import CampaignRequest, Scenario, plan_campaign
from retention_shared.events import RiskBand, ValueTier

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
    model_config = ConfigDict(extra="forbid")

    budget: Annotated[FiniteNumber, Field(ge=0)]
    cost_per_contact: Annotated[
        FiniteNumber,
        Field(ge=MIN_MONEY, description="At least 0.000001 (money is exact to millionths)."),
    ]
    # Share of would-be churners a contact retains.
    save_rate: Annotated[FiniteNumber, Field(ge=0, le=1)]
    discount: Annotated[FiniteNumber, Field(ge=0, lt=1)] = 0.0
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
    cost: float
    net_profit: float
    roi: float | None

    @classmethod
    def of(cls, scenario: Scenario) -> ScenarioView:
        return cls(**scenario.__dict__)


class CampaignPlanView(BaseModel):
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


@router.post("/campaigns/plan")
async def plan(body: CampaignBody, caller: ReadCaller, state: State) -> CampaignPlanView:
    champion = champion_of(state, caller.tenant_id)
    check_segment(champion, body.filters.segment, "filters.segment")
    request = CampaignRequest(
        budget=body.budget,
        cost_per_contact=body.cost_per_contact,
        save_rate=body.save_rate,
        discount=body.discount,
    )
    population = await population_of(state, caller.tenant_id)
    f = body.filters
    filters = Filters(
        segment=f.segment,
        risk_bands=_values(f.risk_band),
        value_tiers=_values(f.value_tier),
        min_ltv=f.min_ltv,
        max_ltv=f.max_ltv,
        min_churn=f.min_churn,
        max_churn=f.max_churn,
    )
    for field, problem in range_problems(filters):
        raise unprocessable(f"filters.{field}", problem)
    if population is not None:
        candidates = filter_scores(population.scores, filters)
        champion = population.champion
    else:
        candidates = None
    if candidates is None or candidates.is_empty():
        empty = plan_campaign([], [], request)  # type: ignore[arg-type]
        return CampaignPlanView(
            model_version=champion.version,
            candidates=0,
            contacts_total=0,
            contacts=[],
            expected=ScenarioView.of(empty.expected),
            pessimistic=ScenarioView.of(empty.pessimistic),
            optimistic=ScenarioView.of(empty.optimistic),
        )
    result = plan_campaign(
        candidates["churn_probability"].to_numpy(), candidates["predicted_ltv"].to_numpy(), request
    )
    listed = result.selected[: body.contacts_limit]
    chosen = candidates[listed.tolist()].to_dicts()
    contacts = [
        Contact(
            customer_id=row["customer_id"],
            churn_probability=row["churn_probability"],
            predicted_ltv=row["predicted_ltv"],
            risk_band=RiskBand(row["risk_band"]),
            value_tier=ValueTier(row["value_tier"]),
            segment=row["segment"],
            expected_net_value=float(value),
        )
        for row, value in zip(chosen, result.expected_value[: len(listed)], strict=True)
    ]
    return CampaignPlanView(
        model_version=champion.version,
        candidates=candidates.height,
        contacts_total=len(result.selected),
        contacts=contacts,
        expected=ScenarioView.of(result.expected),
        pessimistic=ScenarioView.of(result.pessimistic),
        optimistic=ScenarioView.of(result.optimistic),
    )
