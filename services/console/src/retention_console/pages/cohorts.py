"""Cohorts: retention by first-purchase month (or quarter) as a heatmap with its exact table, and
the trainer's CSV of the same cells passed through the console.

The trainer computes every cell (`GET /v1/cohorts`); the page only colours and formats them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from retention_console.pages.deps import Api, CurrentSession
from retention_console.rendering import csv_download, is_htmx, money, number, percent, render

router = APIRouter()

METRICS = {
    "customers": "Customers still ordering",
    "revenue": "Revenue",
    "orders": "Orders",
}
PERIODS = {"month": "Month", "quarter": "Quarter"}
NO_ORDERS = (
    "There are no orders yet, so there are no cohorts to follow. Bring your order history in "
    "as a file (CSV, Excel, Parquet): each customer's first purchase places them in a cohort."
)


def _choice(value: str | None, allowed: dict[str, str]) -> str:
    """The value if the page offers it, else the first choice (a stale link still shows)."""
    return value if value in allowed else next(iter(allowed))


@router.get("/cohorts")
async def cohorts_page(
    request: Request,
    session: CurrentSession,
    api: Api,
    metric: Annotated[str | None, Query(max_length=20)] = None,
    period: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    metric, period = _choice(metric, METRICS), _choice(period, PERIODS)
    matrix = await api.get("trainer", "/v1/cohorts", metric=metric, period=period)
    if not matrix["cohorts"]:
        return render(request, "empty.html", page="cohorts", message=NO_ORDERS)
    context = {
        "matrix": matrix,
        "metric": metric,
        "period": period,
        "metrics": METRICS,
        "periods": PERIODS,
        "heatmap": cohort_heatmap(matrix),
        "label": heatmap_label(matrix),
        "cells": formatted_cells(matrix),
        "csv_url": f"/cohorts.csv?metric={metric}&period={period}",
    }
    # A history restore asks with htmx headers too, and needs the whole page.
    if is_htmx(request) and not request.headers.get("hx-history-restore-request"):
        return render(request, "cohorts_matrix.html", **context)
    return render(request, "cohorts.html", page="cohorts", **context)


@router.get("/cohorts.csv")
async def cohorts_csv(
    session: CurrentSession,
    api: Api,
    metric: Annotated[str | None, Query(max_length=20)] = None,
    period: Annotated[str | None, Query(max_length=20)] = None,
    first: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    last: Annotated[str | None, Query(alias="to", max_length=40)] = None,
) -> Response:
    """The trainer's CSV of the cells, byte for byte, fetched with the signed-in user's key."""
    metric, period = _choice(metric, METRICS), _choice(period, PERIODS)
    upstream = await api.get_raw(
        "trainer",
        "/v1/cohorts.csv",
        metric=metric,
        period=period,
        **{"from": first, "to": last},
    )
    return csv_download(upstream, f"cohorts-{period}-{metric}.csv")


def format_value(value: float | int | None, metric: str, *, exact: bool = False) -> str:
    if value is None:
        return ""
    if metric == "customers":
        return percent(value, 1 if exact else 0)
    if metric == "revenue":
        return number(value, 2) if exact else _compact(value)
    return number(value)


def _compact(value: float) -> str:
    """A cell label that fits a heatmap cell: 950, 12.3k, 4.1M (the table has it exact)."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.1f}M"
    if size >= 1e4:
        return f"{value / 1e3:.0f}k"
    if size >= 1e3:
        return f"{value / 1e3:.1f}k"
    return money(value)


def _cell_text(cohort: dict, age: int, value: Any, metric: str, period: str) -> str:
    what = {
        "customers": "of the cohort ordered",
        "revenue": "net revenue",
        "orders": "orders",
    }[metric]
    exact = format_value(value, metric, exact=True)
    amount = f"{exact} {what}" if metric != "revenue" else f"{what} {exact}"
    return (
        f"{cohort['cohort']} cohort ({number(cohort['size'])} customers), {period} {age}: {amount}"
    )


def cohort_heatmap(matrix: dict) -> dict[str, Any]:
    """x = periods since the first purchase, y = cohort (oldest on top), colour = the metric.

    Age 0 is every cohort's start (100% for the share), so the colour scale tops out at the
    largest later cell, where the differences are; the label still says each cell's value."""
    metric, period = matrix["metric"], matrix["period"]
    cohorts = matrix["cohorts"]
    data = []
    later = []
    for row, cohort in enumerate(cohorts):
        for age, value in enumerate(cohort["values"]):
            data.append(
                {
                    "value": [age, row, value],
                    "name": _cell_text(cohort, age, value, metric, period),
                    "label": {"formatter": format_value(value, metric)},
                }
            )
            if age > 0:
                later.append(value)
    every = [item["value"][2] for item in data]
    top = max(later) if later and max(later) > 0 else max(every)
    low = min(0, *every)
    return {
        "baseOption": {
            "animation": False,
            "tooltip": {"trigger": "item", "formatter": "{b}"},
            "grid": {"left": 64, "right": 12, "top": 36, "bottom": 64},
            "xAxis": {
                "type": "category",
                "data": [str(age) for age in range(matrix["max_age"] + 1)],
                "name": f"{PERIODS[period]}s since first purchase",
                "nameLocation": "middle",
                "nameGap": 26,
                "position": "top",
                "splitArea": {"show": True},
            },
            "yAxis": {
                "type": "category",
                "inverse": True,
                "data": [cohort["cohort"] for cohort in cohorts],
                "splitArea": {"show": True},
            },
            "visualMap": {
                "type": "continuous",
                "dimension": 2,
                "min": low,
                "max": top if top > low else low + 1,
                "calculable": False,
                "orient": "horizontal",
                "left": "center",
                "bottom": 0,
                "itemHeight": 160,
                "text": [
                    format_value(top, metric) + ("+" if max(every) > top else ""),
                    format_value(low, metric),
                ],
                "inRange": {"color": ["#f1f5fb", "#7fb0ff", "#1f5fbf", "#12263f"]},
            },
            "series": [
                {
                    "type": "heatmap",
                    "name": METRICS[metric],
                    "data": data,
                    "label": {"show": True, "fontSize": 11},
                    "emphasis": {"itemStyle": {"borderColor": "#1d2733", "borderWidth": 1}},
                }
            ],
        },
        # On a phone a cell is too small for its label: the tooltip and the table have it.
        "media": [{"query": {"maxWidth": 640}, "option": {"series": [{"label": {"show": False}}]}}],
    }


def heatmap_label(matrix: dict) -> str:
    metric, period = matrix["metric"], matrix["period"]
    return (
        f"Heatmap of {METRICS[metric].lower()} by cohort ({len(matrix['cohorts'])} cohorts, "
        f"oldest {matrix['cohorts'][0]['cohort']}, newest {matrix['cohorts'][-1]['cohort']}) "
        f"and {period}s since the first purchase (0 to {matrix['max_age']}). "
        "Every value is in the table below."
    )


def formatted_cells(matrix: dict) -> list[dict[str, Any]]:
    """The table's rows: each cohort with its values formatted, blank where not reached yet."""
    width = matrix["max_age"] + 1
    rows = []
    for cohort in matrix["cohorts"]:
        values = [format_value(v, matrix["metric"], exact=True) for v in cohort["values"]]
        rows.append({**cohort, "cells": values + [""] * (width - len(values))})
    return rows
