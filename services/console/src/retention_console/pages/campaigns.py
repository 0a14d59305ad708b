"""Campaigns, the ROI simulator: a budget and its assumptions in, scoring's plan out — whom to
contact (the best contacts on screen, the whole list as CSV), what the plan should bring back
(saved revenue, gross profit, cost, net profit, ROI) and how much rides on the save rate (the
pessimistic, expected and optimistic scenarios).

Planning changes nothing, so the form is a GET: its inputs are the URL (a plan can be bookmarked
or sent to a colleague, and a reload keeps it), the download link carries the very inputs of the
plan on screen, and there is no CSRF token to check. The console POSTs to scoring only because
scoring's plan takes a JSON body. Rates are typed as percentages and sent as fractions; every
figure shown is scoring's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import QueryParams

from retention_console.pages.deps import Api, CurrentSession
from retention_console.rendering import csv_download, is_htmx, money, percent, render
from retention_console.services import ApiError, NoModelYet, ServiceUnavailable, UserApi
from retention_shared.events import RiskBand, ValueTier

router = APIRouter()

PLAN = "/v1/campaigns/plan"
# Contacts listed on the page; the CSV holds the whole plan.
CONTACTS_SHOWN = 25


@dataclass(frozen=True)
class NumberInput:
    """One number of the form: how it is labelled, its default, its range as the user types it."""

    name: str
    label: str
    default: str
    hint: str
    low: float
    high: float | None = None
    low_included: bool = True
    high_included: bool = True
    percent: bool = False  # typed as a percentage, sent as a fraction
    optional: bool = False

    def problem(self, value: Decimal) -> str | None:
        too_low = value < self.low if self.low_included else value <= self.low
        too_high = self.high is not None and (
            value > self.high if self.high_included else value >= self.high
        )
        if not (too_low or too_high):
            return None
        unit = "%" if self.percent else ""
        low = f"{'at least' if self.low_included else 'above'} {self.low:g}{unit}"
        if self.high is None:
            return f"{self.label} must be {low}."
        high = f"{'at most' if self.high_included else 'below'} {self.high:g}{unit}"
        return f"{self.label} must be {low} and {high}."


# The trainer's run report plans with the same defaults (retention_trainer.run_report).
NUMBERS = (
    NumberInput("budget", "Budget", "2000", "What the campaign may spend in all.", 0),
    NumberInput(
        "cost_per_contact",
        "Cost per contact",
        "5",
        "What reaching one customer costs (message, call, incentive handling).",
        0,
        low_included=False,
    ),
    NumberInput(
        "save_rate",
        "Save rate (%)",
        "25",
        "Of the customers who would leave, the share a contact keeps.",
        0,
        100,
        percent=True,
    ),
    NumberInput(
        "discount",
        "Discount (%)",
        "10",
        "Price reduction offered to the customers kept.",
        0,
        100,
        high_included=False,
        percent=True,
    ),
    NumberInput(
        "margin",
        "Gross margin (%)",
        "100",
        "Share of a full-price sale left after the cost of goods; 100% counts revenue as profit.",
        0,
        100,
        low_included=False,
        percent=True,
    ),
    NumberInput(
        "min_ltv",
        "Minimum predicted LTV",
        "",
        "Leave empty to consider every customer.",
        0,
        optional=True,
    ),
)
RISK_BANDS = tuple(band.value for band in (RiskBand.HIGH, RiskBand.MEDIUM, RiskBand.LOW))
VALUE_TIERS = tuple(
    tier.value for tier in (ValueTier.VIP, ValueTier.HIGH, ValueTier.MEDIUM, ValueTier.LOW)
)
MAX_TEXT = 256


@dataclass
class CampaignForm:
    """The form as typed (to show it again) and the plan request it makes, if it makes one."""

    values: dict[str, str]
    segment: str
    risk_band: list[str]
    value_tier: list[str]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (input id, message)
    body: dict[str, Any] | None = None

    @property
    def query(self) -> str:
        """The inputs as a query string: the URL of this very plan."""
        pairs = [(n.name, self.values[n.name]) for n in NUMBERS if self.values[n.name]]
        if self.segment:
            pairs.append(("segment", self.segment))
        pairs += [("risk_band", band) for band in self.risk_band]
        pairs += [("value_tier", tier) for tier in self.value_tier]
        return urlencode(pairs)


def read_form(params: QueryParams) -> CampaignForm:
    """The plan request of the inputs, each checked with a message a marketer can act on (scoring
    checks again and has the last word)."""
    # An input not sent takes its default (a link may set only a filter); one sent empty was
    # cleared on purpose.
    values = {n.name: params.get(n.name, n.default).strip()[:MAX_TEXT] for n in NUMBERS}
    form = CampaignForm(
        values=values,
        segment=params.get("segment", "").strip()[:MAX_TEXT],
        risk_band=_choices(params.getlist("risk_band"), RISK_BANDS),
        value_tier=_choices(params.getlist("value_tier"), VALUE_TIERS),
    )
    amounts: dict[str, float] = {}
    for number in NUMBERS:
        text = values[number.name]
        if not text:
            if not number.optional:
                form.problems.append((number.name, f"Enter the {number.label.lower()}."))
            continue
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            form.problems.append((number.name, f"{number.label} must be a number."))
            continue
        if (problem := number.problem(value)) is not None:
            form.problems.append((number.name, problem))
            continue
        # Decimal division: 7 % is exactly the float 0.07, as if the fraction had been typed.
        amounts[number.name] = float(value / 100 if number.percent else value)
    if form.problems:
        return form
    filters: dict[str, Any] = {}
    if form.segment:
        filters["segment"] = form.segment
    if form.risk_band:
        filters["risk_band"] = form.risk_band
    if form.value_tier:
        filters["value_tier"] = form.value_tier
    if "min_ltv" in amounts:
        filters["min_ltv"] = amounts.pop("min_ltv")
    form.body = {**amounts, "filters": filters, "contacts_limit": CONTACTS_SHOWN}
    return form


def _choices(values: list[str], allowed: tuple[str, ...]) -> list[str]:
    """The allowed values among those sent, in the form's order (anything else is not an input
    of this form)."""
    return [value for value in allowed if value in values]


@router.get("/campaigns")
async def campaigns_page(request: Request, session: CurrentSession, api: Api) -> Response:
    form = read_form(request.query_params)
    segments, (plan, problem) = await asyncio.gather(
        api.get("scoring", "/v1/segments"), _plan(api, form, outage_inline=False)
    )
    if not segments["customers"]:
        return render(request, "empty.html", message=None)
    return render(
        request,
        "campaigns.html",
        page="campaigns",
        segments=segments["segments"],
        **_plan_context(form, plan, problem),
    )


@router.get("/campaigns/plan")
async def campaign_plan(request: Request, session: CurrentSession, api: Api) -> Response:
    """The plan alone, for the form's htmx updates; the page's URL follows the inputs."""
    form = read_form(request.query_params)
    if not is_htmx(request):
        return RedirectResponse(f"/campaigns?{form.query}", status_code=303)
    # htmx swaps only a 2xx answer: a problem is shown in place of the plan, the form stays.
    plan, problem = await _plan(api, form, outage_inline=True)
    response = render(request, "campaign_plan.html", **_plan_context(form, plan, problem))
    response.headers["HX-Replace-Url"] = f"/campaigns?{form.query}"
    return response


@router.get("/campaigns/contacts.csv")
async def campaign_contacts(request: Request, session: CurrentSession, api: Api) -> Response:
    """Every contact of the plan of these inputs, as scoring writes it (formulas kept as text)."""
    form = read_form(request.query_params)
    if form.body is None:
        return render(
            request,
            "problem.html",
            status_code=422,
            title="These inputs make no plan",
            message=" ".join(message for _, message in form.problems),
        )
    upstream = await api.post_raw("scoring", PLAN, accept="text/csv", json=form.body)
    return csv_download(upstream, "campaign-contacts.csv")


async def _plan(
    api: UserApi, form: CampaignForm, *, outage_inline: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """Scoring's plan for the form, or why there is none: an input scoring refused (its own
    words, e.g. a segment this model does not have) or, when asked, scoring not answering."""
    if form.body is None:
        return None, None
    try:
        return await api.post("scoring", PLAN, json=form.body), None
    except NoModelYet:
        raise
    except ApiError as error:
        return None, f"Scoring cannot plan with these inputs: {error.problem}"
    except ServiceUnavailable as error:
        if not outage_inline:
            raise
        return None, f"The scoring service is not answering ({error.reason}); try again shortly."


def _plan_context(
    form: CampaignForm, plan: dict[str, Any] | None, problem: str | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "form": form,
        "numbers": NUMBERS,
        "risk_bands": RISK_BANDS,
        "value_tiers": VALUE_TIERS,
        "plan": plan,
        "problem": problem,
        "contacts_shown": CONTACTS_SHOWN,
    }
    if plan is not None and form.body is not None:
        context["scenarios"] = scenarios(plan)
        context["scenario_chart"] = scenario_chart(plan, show_gross=form.body["margin"] < 1)
        context["scenario_label"] = scenario_label(plan)
        context["why_nobody"] = why_nobody(form, plan)
    return context


SCENARIOS = (("pessimistic", "Pessimistic"), ("expected", "Expected"), ("optimistic", "Optimistic"))
MEASURES = (
    ("expected_saved_revenue", "Saved revenue", "#1f5fbf"),
    ("expected_gross_profit", "Gross profit", "#5b9bd5"),
    ("cost", "Cost", "#b54708"),
    ("net_profit", "Net profit", "#067647"),
)


def scenarios(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "label": label, **plan[key]} for key, label in SCENARIOS]


def scenario_chart(plan: dict[str, Any], *, show_gross: bool) -> dict[str, Any]:
    """Grouped bars: per scenario, saved revenue, (gross profit when a margin is set,) cost and
    net profit. Values are scoring's, rounded to cents for the tooltip."""
    measures = [m for m in MEASURES if show_gross or m[0] != "expected_gross_profit"]
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 8, "right": 8, "bottom": 8, "top": 40, "containLabel": True},
        "xAxis": {
            "type": "category",
            "data": [
                f"{label}\n{percent(plan[key]['save_rate'])} saved" for key, label in SCENARIOS
            ],
            "axisLabel": {"interval": 0, "lineHeight": 16},
        },
        "yAxis": {"type": "value"},
        "series": [
            {
                "name": name,
                "type": "bar",
                "itemStyle": {"color": colour},
                "data": [round(plan[key][measure], 2) for key, _ in SCENARIOS],
            }
            for measure, name, colour in measures
        ],
    }


def scenario_label(plan: dict[str, Any]) -> str:
    return "; ".join(
        f"{label} ({percent(plan[key]['save_rate'])} saved): saved revenue "
        f"{money(plan[key]['expected_saved_revenue'])}, cost {money(plan[key]['cost'])}, "
        f"net profit {money(plan[key]['net_profit'])}"
        for key, label in SCENARIOS
    )


def why_nobody(form: CampaignForm, plan: dict[str, Any]) -> str | None:
    """Why a plan contacts nobody, from the inputs alone."""
    if plan["contacts_total"]:
        return None
    body = form.body or {}
    if not plan["candidates"]:
        return "No customer matches these filters. Widen them to plan a campaign."
    if body["budget"] < body["cost_per_contact"]:
        return "The budget does not cover a single contact at this cost per contact."
    if body["margin"] <= body["discount"]:
        return (
            "The discount is as large as the gross margin: every sale it saves loses money, so "
            "nobody is worth contacting. Lower the discount or check the margin."
        )
    if body["save_rate"] == 0:
        return "At a save rate of 0% a contact keeps nobody, so nobody is worth contacting."
    return (
        "No matching customer is expected to bring back more than a contact costs. Lower the "
        "cost per contact, raise the save rate or widen the filters."
    )
