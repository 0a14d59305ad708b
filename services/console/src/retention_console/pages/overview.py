"""Overview, the control tower: KPI cards with their change since the previous model, the
narrative of where revenue leaks, and the high-value customers most at risk."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from retention_console.pages.customers import ListFilter
from retention_console.pages.deps import Api, CurrentSession
from retention_console.rendering import render
from retention_shared.customer_lists import HIGH_VALUE_AT_RISK

router = APIRouter()


def at_risk_list_query() -> str:
    """The customer list's query string for the whole high-value-at-risk list (all pages)."""
    listed = {
        name: tuple(str(HIGH_VALUE_AT_RISK[name]).split(","))
        for name in ("risk_band", "value_tier")
    }
    return ListFilter(**listed, sort=str(HIGH_VALUE_AT_RISK["sort"])).query()


@router.get("/")
async def overview(request: Request, session: CurrentSession, api: Api) -> Response:
    insights, at_risk = await asyncio.gather(
        api.get("scoring", "/v1/insights"),
        api.get("scoring", "/v1/customers", **HIGH_VALUE_AT_RISK),
    )
    if not any(kpi["name"] == "customers" and kpi["value"] for kpi in insights["kpis"]):
        return render(request, "empty.html", message=None)
    return render(
        request,
        "overview.html",
        page="overview",
        insights=insights,
        at_risk=at_risk["customers"],
        at_risk_query=at_risk_list_query(),
        risk_chart=revenue_at_risk_chart(insights["segments"]),
        kpi_notes=kpi_notes(insights),
    )


def kpi_notes(insights: dict) -> dict[str, str]:
    """What each KPI counts, in a line under its number: a card's label alone does not say
    over which days, or what makes a customer at risk."""
    active, horizon = insights["active_days"], insights["ltv_horizon_days"]
    return {
        "customers": "with a score from the model",
        "active_customers": f"ordered in the last {active} days",
        "at_risk_customers": "at high risk of churning",
        "revenue_at_risk": "churn probability × predicted value, summed",
        "retention_rate": f"of those active the {active} days before, ordered again",
        "predicted_revenue": f"expected over the next {horizon} days",
    }


def revenue_at_risk_chart(segments: list[dict]) -> dict:
    """Revenue at risk per segment, largest first: where a retention budget would go."""
    rows = sorted(segments, key=lambda row: -row["revenue_at_risk"])
    return {
        "grid": {"left": 8, "right": 24, "top": 10, "bottom": 8, "containLabel": True},
        "tooltip": {"trigger": "axis"},
        # The card's heading names the axis; labels thin out rather than overlap on a phone.
        "xAxis": {"type": "value", "axisLabel": {"hideOverlap": True}, "splitNumber": 3},
        "yAxis": {
            "type": "category",
            "inverse": True,
            "data": [row["segment"] for row in rows],
        },
        "series": [
            {
                "type": "bar",
                "name": "Revenue at risk",
                "data": [round(row["revenue_at_risk"], 2) for row in rows],
                "itemStyle": {"color": "#b42318"},
            }
        ],
    }
