"""`POST /v1/campaigns/plan`: whom to contact for a retention budget (see `campaigns.py`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from retention_scoring.api.deps import State, champion_of, population_of
from retention_scoring.campaigns import CampaignRequest, Scenario, plan_campaign
from retention_scoring.lists import Filters, filter_scores
from retention_shared.auth import ReadCaller
from retention_shared.events import RiskBand, ValueTier

router = APIRouter(prefix="/v1", tags=["campaigns"])


class CampaignFilters(BaseModel):
    segment: str | None = None
    risk_band: RiskBand | None = None
    value_tier: ValueTier | None = None
    min_ltv: float | None = Field(None, ge=0)


class CampaignBody(BaseModel):
    budget: float = Field(ge=0, allow_inf_nan=False)
    cost_per_contact: float = Field(gt=0, allow_inf_nan=False)
    # Share of would-be churners a contact retains.
    save_rate: float = Field(ge=0, le=1)
    discount: float = Field(0.0, ge=0, lt=1)
    filters: CampaignFilters = Field(default_factory=CampaignFilters)


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
    contacts: list[Contact]
    expected: ScenarioView
    pessimistic: ScenarioView
    optimistic: ScenarioView


@router.post("/campaigns/plan")
async def plan(body: CampaignBody, caller: ReadCaller, state: State) -> CampaignPlanView:
    champion = champion_of(state, caller.tenant_id)
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
        risk_band=f.risk_band.value if f.risk_band else None,
        value_tier=f.value_tier.value if f.value_tier else None,
        min_ltv=f.min_ltv,
    )
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
            contacts=[],
            expected=ScenarioView.of(empty.expected),
            pessimistic=ScenarioView.of(empty.pessimistic),
            optimistic=ScenarioView.of(empty.optimistic),
        )
    result = plan_campaign(
        candidates["churn_probability"].to_numpy(), candidates["predicted_ltv"].to_numpy(), request
    )
    chosen = candidates[result.selected.tolist()].to_dicts()
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
        for row, value in zip(chosen, result.expected_value, strict=True)
    ]
    return CampaignPlanView(
        model_version=champion.version,
        candidates=candidates.height,
        contacts=contacts,
        expected=ScenarioView.of(result.expected),
        pessimistic=ScenarioView.of(result.pessimistic),
        optimistic=ScenarioView.of(result.optimistic),
    )
