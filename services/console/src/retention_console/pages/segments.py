"""Segments: who the tenant's customers are (a table and a bar per segment), where they sit in
recency × frequency × spend (a sampled scatter), and how they moved between two dates (a Sankey).

Every number shown is an API's: the segment table and the points come from scoring, the
migration from the trainer. The charts only place and colour them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from markupsafe import escape
from starlette.datastructures import URL

from retention_console.pages.deps import Api, CurrentSession
from retention_console.rendering import csv_download, is_htmx, money, number, percent, render
from retention_console.services import ApiError, ServiceUnavailable, UserApi

router = APIRouter()

# Customers drawn in the RFM scatter: enough to see the clusters, few enough for a phone.
POINTS = 2000
NOT_YET = "Not yet a customer"  # the trainer's name for "no order at or before `from`"
# One colour per persona (retention_bundle.models.segmenter.PERSONAS), the same in every chart.
SEGMENT_COLOURS = {
    "Champions": "#067647",
    "Loyal": "#1f5fbf",
    "Potential loyalists": "#5b9bd5",
    "New": "#7a4fc9",
    "At risk": "#b54708",
    "Can't lose": "#b42318",
    "Hibernating": "#8a94a6",
    "Lost": "#3f4a5a",
    NOT_YET: "#c3ccd6",
}
OTHER_COLOURS = ("#0e7c86", "#c4327a", "#6b8e23", "#a0522d")


def colour(segment: str) -> str:
    return SEGMENT_COLOURS.get(segment) or OTHER_COLOURS[sum(map(ord, segment)) % 4]


@router.get("/segments")
async def segments_page(
    request: Request,
    session: CurrentSession,
    api: Api,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
) -> Response:
    table, points, migration = await asyncio.gather(
        api.get("scoring", "/v1/segments"),
        api.get("scoring", "/v1/segments/points", limit=POINTS),
        segment_migration(api, start, end),
    )
    if not table["customers"]:
        return render(request, "empty.html", page="segments", message=None)
    segments = table["segments"]
    return render(
        request,
        "segments.html",
        page="segments",
        table=table,
        bars=segment_bars(segments),
        bars_label=", ".join(
            f"{row['segment']}: {number(row['customers'])} customers, "
            f"{percent(row['revenue_share'])} of revenue"
            for row in segments
        ),
        points=points,
        scatter=rfm_scatter(points),
        migration=migration,
        colour=colour,
    )


@router.get("/segments/points.csv")
async def points_csv(session: CurrentSession, api: Api) -> Response:
    """The scatter's customers as scoring writes them (exact values), through the console."""
    upstream = await api.get_raw("scoring", "/v1/segments/points", accept="text/csv", limit=POINTS)
    return csv_download(upstream, "segment-points.csv")


@router.get("/segments/migration")
async def migration_fragment(
    request: Request,
    session: CurrentSession,
    api: Api,
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
) -> Response:
    """The migration card's chart and table for other dates (htmx swaps it in); the whole page
    with those dates when asked without htmx."""
    dates = {k: v for k, v in (("from", start), ("to", end)) if v}
    page_url = str(URL("/segments").include_query_params(**dates)) if dates else "/segments"
    if not is_htmx(request):
        return RedirectResponse(page_url, status_code=303)
    migration = await segment_migration(api, start, end)
    response = render(request, "segments_migration.html", migration=migration)
    response.headers["HX-Push-Url"] = page_url
    return response


async def segment_migration(api: UserApi, start: str | None, end: str | None) -> dict[str, Any]:
    """The trainer's migration between two dates as the card shows it; a refusal (no model yet,
    a date it does not take) or a trainer that does not answer is a message in the card, not
    the whole page's."""
    view: dict[str, Any] = {"from": start or "", "to": end or "", "answer": None, "problem": None}
    try:
        answer = await api.get("trainer", "/v1/segments/migration", **{"from": start, "to": end})
    except ApiError as error:
        if error.status not in (409, 422):
            raise
        view["problem"] = error.problem
        return view
    except ServiceUnavailable as error:
        view["problem"] = (
            f"The trainer is not answering ({error.reason}), so the migration cannot be shown "
            "right now. Try again in a minute."
        )
        return view
    sides = max(len({f["from"] for f in answer["flows"]}), len({f["to"] for f in answer["flows"]}))
    view.update(
        answer=answer,
        sankey=migration_sankey(answer),
        label=migration_label(answer),
        height=max(260, 44 * sides + 40),
        **{"from": answer["from"], "to": answer["to"]},
    )
    return view


def segment_bars(segments: list[dict]) -> dict[str, Any]:
    """One horizontal bar per segment: its customers, labelled with its share of revenue."""
    return {
        "animation": False,
        "grid": {"left": 8, "right": 150, "top": 8, "bottom": 8, "containLabel": True},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "value", "name": "Customers", "show": False},
        "yAxis": {
            "type": "category",
            "inverse": True,
            "data": [row["segment"] for row in segments],
            "axisTick": {"show": False},
        },
        "series": [
            {
                "type": "bar",
                "name": "Customers",
                "barMaxWidth": 32,
                "cursor": "pointer",
                "data": [
                    {
                        "value": row["customers"],
                        "itemStyle": {"color": colour(row["segment"])},
                        "label": {
                            "formatter": f"{number(row['customers'])} · "
                            f"{percent(row['revenue_share'])} of revenue"
                        },
                        "tooltip": {
                            "formatter": f"{escape(row['segment'])}: {number(row['customers'])} "
                            f"customers, {percent(row['revenue_share'])} of revenue"
                        },
                    }
                    for row in segments
                ],
                "label": {"show": True, "position": "right", "color": "#1d2733"},
            }
        ],
    }


def rfm_scatter(points: dict) -> dict[str, Any]:
    """Recency × frequency, one series (colour) per segment, dot area by net spend; a dot links
    to its customer."""
    rows = points["points"]
    top = max((row["monetary"] for row in rows), default=0.0)
    by_segment: dict[str, list[dict]] = {name: [] for name in points["segments"]}
    for row in rows:
        by_segment.setdefault(row["segment"], []).append(
            {
                "name": row["customer_id"],
                "link": row["customer_id"],
                # Positions need no more digits than a pixel; the tooltip and the CSV are exact.
                "value": [
                    round(row["recency_days"], 2),
                    row["frequency"],
                    round(row["monetary"], 2),
                ],
                "symbolSize": _dot(row["monetary"], top),
            }
        )
    return {
        "animation": False,
        "legend": {"top": 0, "type": "scroll"},
        # Room for the axis names, which `containLabel` leaves out.
        "grid": {"left": 52, "right": 20, "top": 44, "bottom": 48},
        # Written in the browser (console.js), escaping the id there: one per point was most of
        # this page's server time (bench/console).
        "tooltip": {"trigger": "item", "formatter": "fn:rfm-point"},
        "xAxis": {
            "type": "value",
            "name": "Days since last order",
            "nameLocation": "middle",
            "nameGap": 28,
            "min": 0,
        },
        "yAxis": {
            "type": "value",
            "name": "Orders",
            "nameLocation": "middle",
            "nameGap": 36,
            "min": 0,
        },
        "series": [
            {
                "type": "scatter",
                "name": name,
                "data": data,
                "itemStyle": {"color": colour(name), "opacity": 0.6},
                "emphasis": {"focus": "series"},
            }
            for name, data in by_segment.items()
            if data
        ],
    }


def _dot(monetary: float, top: float) -> float:
    """Dot diameter in px: area proportional to spend (a negative net spend is the smallest)."""
    share = max(monetary, 0.0) / top if top > 0 else 0.0
    return round(4 + 22 * math.sqrt(share), 1)


def then(segment: str) -> str:
    return segment if segment == NOT_YET else f"{segment} (then)"


def now(segment: str) -> str:
    return f"{segment} (now)"


def migration_sankey(answer: dict) -> dict[str, Any]:
    """Segments at `from` on the left, at `to` on the right: the two ends are distinct nodes
    ("Champions (then)", "Champions (now)"), so a customer who stayed is a flow across, never a
    cycle. Flow width is customers (revenue can be negative); an end node opens its customers."""
    flows = answer["flows"]
    sources = {flow["from"] for flow in flows}
    targets = {flow["to"] for flow in flows}
    nodes = [
        {
            "name": then(segment),
            "depth": 0,
            "itemStyle": {"color": colour(segment)},
            "link": None,
        }
        for segment in answer["segments"]
        if segment in sources
    ] + [
        {
            "name": now(segment),
            "depth": 1,
            "itemStyle": {"color": colour(segment)},
            "label": {"position": "left"},
            "link": segment,
        }
        for segment in answer["segments"]
        if segment in targets
    ]
    return {
        "animation": False,
        "tooltip": {"trigger": "item"},
        "series": [
            {
                "type": "sankey",
                "left": 8,
                "right": 8,
                "top": 8,
                "bottom": 8,
                "nodeWidth": 14,
                "nodeGap": 10,
                "layoutIterations": 0,
                "draggable": False,
                "emphasis": {"focus": "adjacency"},
                "lineStyle": {"color": "gradient", "opacity": 0.35},
                "label": {"fontSize": 12},
                "data": nodes,
                "links": [
                    {
                        "source": then(flow["from"]),
                        "target": now(flow["to"]),
                        "value": flow["customers"],
                        "link": None,
                    }
                    for flow in flows
                ],
            }
        ],
    }


def migration_label(answer: dict) -> str:
    flows = "; ".join(
        f"{flow['from']} to {flow['to']}: {number(flow['customers'])} customers, "
        f"{money(flow['revenue'])} net spend"
        for flow in answer["flows"]
    )
    return (
        f"Segment migration from {answer['from']} to {answer['to']}: "
        f"{flows or 'no customers at either date'}."
    )
