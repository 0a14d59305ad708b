"""Customers: the action list and one customer's page.

`/customers` is scoring's list (`GET /v1/customers`) with its filters in a GET form: segment,
risk bands and value tiers (any of the checked ones), a churn-probability range typed in percent
(the list shows churn in percent), a predicted-LTV range, an expected-orders range and a
next-order date range, the sort and the page size. The URL
always says the whole state, so a reload, a bookmark or a shared link shows the same list;
htmx swaps only the results and pushes that URL. Paging is scoring's keyset cursor; "Previous"
works from the cursors of the pages before, kept in the URL (`prev`).

`/customers.csv` is the same filter as a file: scoring's CSV for the filter and sort, every
page of it (the console follows `X-Next-Cursor` with the largest page scoring serves), so the
file is exactly what `GET /v1/customers?<filter>&limit=10000` with `Accept: text/csv` answers,
page after page with the header once. It is not the screen's page: a download is the whole list.

`/customers/{id}` is one customer: scores with their reasons, the model's expected orders and
next-order date beside the customer's usual gap between purchases, their orders (chart and paged table), the score changes
scoring announced, and their features beside the median of their segment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from retention_console.pages.deps import Api, CurrentSession
from retention_console.rendering import is_htmx, money, number, percent, render
from retention_console.services import ApiError, ServiceUnavailable, UserApi
from retention_shared.features import FEATURES

router = APIRouter()

SORTS = (
    ("revenue_at_risk", "Revenue at risk"),
    ("churn_probability", "Churn probability"),
    ("predicted_ltv", "Predicted LTV"),
    ("expected_orders", "Expected orders"),
    ("customer_id", "Customer id"),
)
DEFAULT_SORT = "revenue_at_risk"
BANDS = ("high", "medium", "low")
TIERS = ("VIP", "High", "Medium", "Low")
PAGE_SIZES = (25, 50, 100)
DEFAULT_PAGE_SIZE = 50
# Scoring's largest list page: a download asks for as few pages as it can.
CSV_PAGE = 10_000
# Far more than anyone pages back through; keeps a URL from growing without end.
MAX_PREVIOUS = 200

# Scoring's names for the list's fields, as the form labels them.
FIELD_LABELS = {
    "query.segment": "Segment",
    "query.risk_band": "Risk",
    "query.value_tier": "Value tier",
    "query.min_churn": "Churn from",
    "query.max_churn": "Churn to",
    "query.min_ltv": "Predicted LTV from",
    "query.max_ltv": "Predicted LTV to",
    "query.min_orders": "Expected orders from",
    "query.max_orders": "Expected orders to",
    "query.next_order_from": "Next order from",
    "query.next_order_to": "Next order to",
    "query.sort": "Sort by",
    "query.limit": "Rows per page",
}


# Bounds sent to scoring as typed (it validates them and names the field at fault).
_PASSED_THROUGH = (
    "min_ltv",
    "max_ltv",
    "min_orders",
    "max_orders",
    "next_order_from",
    "next_order_to",
)


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class ListFilter:
    """The list's state as the URL carries it (text as typed: scoring validates the numbers)."""

    segment: str = ""
    risk_band: tuple[str, ...] = ()
    value_tier: tuple[str, ...] = ()
    min_churn_pct: str = ""
    max_churn_pct: str = ""
    min_ltv: str = ""
    max_ltv: str = ""
    min_orders: str = ""
    max_orders: str = ""
    next_order_from: str = ""
    next_order_to: str = ""
    sort: str = DEFAULT_SORT
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str = ""
    prev: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, request: Request) -> ListFilter:
        query = request.query_params

        def listed(name: str) -> tuple[str, ...]:
            values = [part.strip() for v in query.getlist(name) for part in v.split(",")]
            return tuple(dict.fromkeys(v for v in values if v))

        try:
            limit = int(query.get("limit", DEFAULT_PAGE_SIZE))
        except ValueError:
            limit = DEFAULT_PAGE_SIZE
        return cls(
            segment=query.get("segment", "").strip(),
            risk_band=listed("risk_band"),
            value_tier=listed("value_tier"),
            min_churn_pct=query.get("min_churn_pct", "").strip(),
            max_churn_pct=query.get("max_churn_pct", "").strip(),
            **{name: query.get(name, "").strip() for name in _PASSED_THROUGH},
            sort=query.get("sort", "").strip() or DEFAULT_SORT,
            limit=limit if limit in PAGE_SIZES else DEFAULT_PAGE_SIZE,
            cursor=query.get("cursor", "").strip(),
            prev=tuple(query.getlist("prev"))[-MAX_PREVIOUS:],
        )

    def api_filter(self) -> dict[str, Any]:
        """Scoring's list parameters for this filter and sort (no paging); FilterError for a
        churn bound that is not a percentage."""
        min_churn = _probability(self.min_churn_pct, "Churn from")
        max_churn = _probability(self.max_churn_pct, "Churn to")
        if (
            min_churn is not None
            and max_churn is not None
            and Decimal(min_churn) > Decimal(max_churn)
        ):
            raise FilterError(
                f"Churn to: {self.max_churn_pct}% is below Churn from {self.min_churn_pct}%."
            )
        return {
            "segment": self.segment or None,
            "risk_band": ",".join(self.risk_band) or None,
            "value_tier": ",".join(self.value_tier) or None,
            "min_churn": min_churn,
            "max_churn": max_churn,
            **{name: getattr(self, name) or None for name in _PASSED_THROUGH},
            "sort": self.sort,
        }

    def query(self, **changes: Any) -> str:
        """This state (with `changes`) as a query string, leaving out what is at its default."""
        state = replace(self, **changes)
        pairs: list[tuple[str, str]] = []
        for name in (
            "segment",
            "min_churn_pct",
            "max_churn_pct",
            *_PASSED_THROUGH,
        ):
            if value := getattr(state, name):
                pairs.append((name, value))
        pairs += [("risk_band", band) for band in state.risk_band]
        pairs += [("value_tier", tier) for tier in state.value_tier]
        if state.sort != DEFAULT_SORT:
            pairs.append(("sort", state.sort))
        if state.limit != DEFAULT_PAGE_SIZE:
            pairs.append(("limit", str(state.limit)))
        if state.cursor:
            pairs.append(("cursor", state.cursor))
        pairs += [("prev", cursor) for cursor in state.prev]
        return urlencode(pairs)

    @property
    def page_number(self) -> int:
        return len(self.prev) + (2 if self.cursor else 1)

    def next_page(self, cursor: str) -> str:
        return self.query(cursor=cursor, prev=(*self.prev, self.cursor) if self.cursor else ())

    def previous_page(self) -> str | None:
        if not self.cursor:
            return None
        return self.query(cursor=self.prev[-1] if self.prev else "", prev=self.prev[:-1])

    def first_page(self) -> str:
        return self.query(cursor="", prev=())

    def csv_query(self) -> str:
        """The filter and sort without paging: what `/customers.csv` takes."""
        return self.query(cursor="", prev=(), limit=DEFAULT_PAGE_SIZE)

    @property
    def is_filtered(self) -> bool:
        return self != ListFilter(sort=self.sort, limit=self.limit)


def _probability(percentage: str, label: str) -> str | None:
    """A churn bound typed in percent as scoring's probability, exactly (`33.3` → `0.333`)."""
    if not percentage:
        return None
    try:
        value = Decimal(percentage)
    except InvalidOperation:
        raise FilterError(f"{label}: enter a percentage from 0 to 100.") from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise FilterError(f"{label}: enter a percentage from 0 to 100.")
    return str((value / 100).normalize())


def _filter_problem(exc: ApiError) -> str:
    field_name, problem = exc.field_problem
    label = FIELD_LABELS.get(field_name or "", field_name)
    # Name the other end of a range as the form does.
    problem = problem.replace("min_ltv", "Predicted LTV from")
    return f"{label}: {problem}" if label else problem


@router.get("/customers")
async def customers_page(request: Request, session: CurrentSession, api: Api) -> Response:
    state = ListFilter.of(request)
    segments = await api.get("scoring", "/v1/segments")
    if not segments["customers"]:
        return render(request, "empty.html", message=None)
    listing, error, notice = None, None, None
    try:
        params = state.api_filter()
        try:
            listing = await _list_page(api, params, state)
        except ApiError as exc:
            if exc.status != 422 or exc.field_problem[0] != "cursor":
                raise
            # A page link made for another filter, or before scoring restarted: start over.
            state = replace(state, cursor="", prev=())
            listing = await _list_page(api, params, state)
            notice = "That page link no longer fits this list, so it starts from the first page."
    except FilterError as exc:
        error = str(exc)
    except ApiError as exc:
        if exc.status != 422:
            raise
        error = _filter_problem(exc)
    template = "customers_results.html" if _partial(request) else "customers.html"
    response = render(
        request,
        template,
        status_code=422 if error and not is_htmx(request) else 200,
        page="customers",
        state=state,
        segments=[row["segment"] for row in segments["segments"]],
        sorts=SORTS,
        bands=BANDS,
        tiers=TIERS,
        page_sizes=PAGE_SIZES,
        listing=listing,
        error=error,
        notice=notice,
    )
    if is_htmx(request):
        # The address bar shows the state without the form's empty fields.
        query = state.query()
        response.headers["HX-Push-Url"] = "/customers" + (f"?{query}" if query else "")
    response.headers["Vary"] = "HX-Request"
    return response


async def _list_page(api: UserApi, params: dict[str, Any], state: ListFilter) -> dict:
    return await api.get(
        "scoring", "/v1/customers", **params, limit=state.limit, cursor=state.cursor or None
    )


def _partial(request: Request) -> bool:
    """An htmx swap of one part (not htmx restoring a page it has no copy of)."""
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


@router.get("/customers.csv")
async def customers_csv(request: Request, session: CurrentSession, api: Api) -> Response:
    """Every customer of the filter in its sort, as scoring writes them (see the module)."""
    state = ListFilter.of(request)
    try:
        params = state.api_filter()
    except FilterError as exc:
        return render(
            request, "problem.html", status_code=422, title="Check the filter", message=str(exc)
        )
    first = await api.get_raw(
        "scoring", "/v1/customers", accept="text/csv", **params, limit=CSV_PAGE
    )
    headers = {"Content-Disposition": 'attachment; filename="customers.csv"'}
    if total := first.headers.get("x-total-count"):
        headers["X-Total-Count"] = total

    async def pages() -> AsyncIterator[bytes]:
        yield first.content
        cursor = first.headers.get("x-next-cursor")
        while cursor:
            more = await api.get_raw(
                "scoring",
                "/v1/customers",
                accept="text/csv",
                **params,
                limit=CSV_PAGE,
                cursor=cursor,
            )
            # Each page repeats the header line; the file has it once.
            yield more.content.split(b"\n", 1)[1] if b"\n" in more.content else b""
            cursor = more.headers.get("x-next-cursor")

    return StreamingResponse(
        pages(),
        media_type=first.headers.get("content-type", "text/csv; charset=utf-8"),
        headers=headers,
    )


@router.get("/customer")
async def open_customer(session: CurrentSession, id: str = "") -> Response:
    """The "open a customer" form: to the customer's page, or back to the list without an id."""
    customer_id = id.strip()
    if not customer_id:
        return RedirectResponse("/customers", status_code=303)
    return RedirectResponse(f"/customers/{quote(customer_id, safe='')}", status_code=303)


ORDERS_PAGE = 20
# Orders in the timeline: the features service's largest page, the customer's latest orders.
ORDERS_CHARTED = 500
SCORE_CHANGES = 20

T = TypeVar("T")


async def _optional(call: Awaitable[T]) -> tuple[T | None, str | None]:
    """A part of the customer page that may fail alone: (answer, None) or (None, why)."""
    try:
        return await call, None
    except ServiceUnavailable as exc:
        return None, f"{exc.service} is not answering ({exc.reason})."
    except ApiError as exc:
        return None, exc.problem


@router.get("/customers/{customer_id:path}")
async def customer_page(
    customer_id: str, request: Request, session: CurrentSession, api: Api
) -> Response:
    if customer_id in ("", ".", ".."):
        return _no_customer(request, customer_id)
    path = f"/v1/customers/{quote(customer_id, safe='')}"
    orders_state = _OrdersState.of(request)
    if request.headers.get("hx-target") == "orders" and _partial(request):
        orders, orders_problem = await _optional(
            api.get("features", f"{path}/orders", limit=ORDERS_PAGE, cursor=orders_state.cursor)
        )
        return render(
            request,
            "customer_orders.html",
            customer_id=customer_id,
            orders=orders,
            orders_problem=orders_problem,
            orders_state=orders_state,
        )
    try:
        score = await api.get("scoring", f"{path}/score")
    except ApiError as exc:
        if exc.status == 404:
            return _no_customer(request, customer_id)
        raise
    (
        (features, features_problem),
        (history, history_problem),
        (charted, charted_problem),
        (orders, orders_problem),
        (profile, profile_problem),
    ) = await asyncio.gather(
        _optional(api.get("scoring", f"{path}/features")),
        _optional(api.get("scoring", f"{path}/score/history", limit=SCORE_CHANGES)),
        _optional(api.get("features", f"{path}/orders", limit=ORDERS_CHARTED)),
        _optional(
            api.get("features", f"{path}/orders", limit=ORDERS_PAGE, cursor=orders_state.cursor)
        ),
        _optional(api.get("scoring", f"/v1/segments/{quote(score['segment'], safe='')}/profile")),
    )
    values = features["features"] if features else {}
    return render(
        request,
        "customer.html",
        page="customers",
        customer_id=customer_id,
        score=score,
        features=features,
        features_problem=features_problem,
        next_order=expected_next_order(values, charted["orders"] if charted else None),
        comparison=feature_comparison(values, profile),
        profile=profile,
        profile_problem=profile_problem,
        history=history["changes"] if history else None,
        history_problem=history_problem,
        charted=charted,
        charted_problem=charted_problem,
        orders_chart=orders_chart(charted["orders"]) if charted and charted["orders"] else None,
        orders=orders,
        orders_problem=orders_problem,
        orders_state=orders_state,
    )


def _no_customer(request: Request, customer_id: str) -> Response:
    return render(
        request, "customer_missing.html", status_code=404, page="customers", customer_id=customer_id
    )


@dataclass(frozen=True)
class _OrdersState:
    """Where the order table is: the features service's cursor and the ones before it."""

    cursor: str | None
    prev: tuple[str, ...]

    @classmethod
    def of(cls, request: Request) -> _OrdersState:
        query = request.query_params
        return cls(
            cursor=query.get("orders_cursor") or None,
            prev=tuple(query.getlist("orders_prev"))[-MAX_PREVIOUS:],
        )

    @property
    def page_number(self) -> int:
        return len(self.prev) + (2 if self.cursor else 1)

    def next_page(self, cursor: str) -> str:
        prev = (*self.prev, self.cursor) if self.cursor else ()
        return urlencode([("orders_cursor", cursor), *(("orders_prev", p) for p in prev)])

    def previous_page(self) -> str | None:
        if not self.cursor:
            return None
        if not self.prev:
            return ""
        return urlencode(
            [("orders_cursor", self.prev[-1]), *(("orders_prev", p) for p in self.prev[:-1])]
        )


def expected_next_order(features: dict[str, float], orders: list[dict] | None) -> dict | None:
    """When the next order is due by the customer's usual gap between purchases (the features
    `gap_mean_days` and `days_past_expected_order`), and their last purchase. Scoring does not
    forecast a date; this is the features' arithmetic, said as such on the page."""
    if not features:
        return None
    last_purchase = next((o for o in orders or [] if not o["cancelled"]), None)
    gap = features.get("gap_mean_days") or 0.0
    return {
        # Orders minutes apart on one day are no rhythm: "usually orders every 0 days" is not one.
        "usual_gap_days": gap if gap >= 1 else None,
        "no_gap_yet": no_usual_gap(features),
        "days_past_due": features.get("days_past_expected_order"),
        "recency_days": features.get("recency_days"),
        "last_purchase": last_purchase["occurred_at"] if last_purchase else None,
    }


def no_usual_gap(features: dict[str, float]) -> str:
    """Why there is no usual gap yet, by what the features count: one order, or several orders
    less than a day apart (two invoices minutes apart are two orders, and no rhythm). Scoring's
    reasons say the same (`retention_scoring.reasons.no_usual_gap`)."""
    orders = round(features.get("frequency") or 1.0)
    if orders <= 1:
        return "one order so far"
    span = (features.get("tenure_days") or 0.0) - (features.get("recency_days") or 0.0)
    if span < 1:
        return f"{orders} orders, all within one day"
    return f"{orders} orders, less than a day apart on average"


def feature_value(value: float | None, unit: str, name: str) -> str:
    """A feature as people read it: money without cents, shares in percent, days whole."""
    if value is None:
        return "–"
    if unit == "currency":
        return money(value)
    if name in ("cancellation_rate", "q4_spend_share"):
        return percent(value)
    if name == "recency_gap_ratio":
        return f"{number(value, 1)}×"
    if name == "spend_trend":
        return f"{value:+.2f}"
    text = number(value, 1) if unit == "items" else number(value)
    # -0.2 days reads as "0", not "-0".
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


# The clock's time of year, as the model reads it: the same for every customer at one clock, so
# a customer beside their segment says nothing there, and "sine" means nothing to a marketer.
SAME_FOR_EVERY_CUSTOMER = frozenset({"season_sin", "season_cos"})


def feature_comparison(features: dict[str, float], profile: dict | None) -> list[dict]:
    """Each feature of the customer beside the segment's median and middle half (but those
    the same for every customer)."""
    spreads = {row["feature"]: row for row in profile["features"]} if profile else {}
    rows = []
    for feature in FEATURES:
        if feature.name not in features or feature.name in SAME_FOR_EVERY_CUSTOMER:
            continue
        value = features[feature.name]
        spread = spreads.get(feature.name)
        p25 = spread["p25"] if spread else None
        p75 = spread["p75"] if spread else None
        if p25 is None or p75 is None:
            place = ""
        elif value > p75:
            place = "above"
        elif value < p25:
            place = "below"
        else:
            place = "within"
        rows.append(
            {
                "feature": feature.name,
                "label": feature.label or feature.name.replace("_", " "),
                "meaning": feature.meaning,
                "value": feature_value(value, feature.unit, feature.name),
                "median": feature_value(
                    spread["median"] if spread else None, feature.unit, feature.name
                ),
                "p25": feature_value(p25, feature.unit, feature.name),
                "p75": feature_value(p75, feature.unit, feature.name),
                "place": place,
            }
        )
    return rows


# Each point is [date, net value, order id]; the tooltip names all three.
ORDER_DIMENSIONS = {
    "dimensions": ["Date", "Net value", "Order"],
    "encode": {"x": "Date", "y": "Net value", "tooltip": ["Date", "Net value", "Order"]},
}


DAY_MS = 86_400_000


def orders_chart(orders: list[dict]) -> dict:
    """The orders over time: purchases as bars of their net value, cancellations as red
    triangles below zero."""
    purchases = [
        [o["occurred_at"], o["net_value"], o["order_id"]] for o in orders if not o["cancelled"]
    ]
    cancellations = [
        [o["occurred_at"], o["net_value"], o["order_id"]] for o in orders if o["cancelled"]
    ]
    return {
        "grid": {"left": 64, "right": 20, "top": 30, "bottom": 64},
        "legend": {"bottom": 0},
        "tooltip": {"trigger": "item"},
        # Days, never clock times: orders on one day would otherwise stretch the axis over
        # their minutes and label it 10:57, 10:58, … with no date at all.
        "xAxis": {
            "type": "time",
            "minInterval": DAY_MS,
            "axisLabel": {"hideOverlap": True, "formatter": "{yyyy}-{MM}-{dd}"},
        },
        "yAxis": {"type": "value", "name": "Net value", "nameGap": 12},
        "series": [
            {
                "type": "bar",
                "name": "Orders",
                "data": purchases,
                **ORDER_DIMENSIONS,
                "barMaxWidth": 10,
                "barMinWidth": 3,
                "itemStyle": {"color": "#1f5fbf"},
            },
            {
                "type": "scatter",
                "name": "Cancellations",
                "data": cancellations,
                **ORDER_DIMENSIONS,
                "symbol": "triangle",
                "symbolRotate": 180,
                "symbolSize": 11,
                "itemStyle": {"color": "#b42318"},
            },
        ],
    }
