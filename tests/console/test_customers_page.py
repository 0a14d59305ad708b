"""The customers list, its CSV and one customer's page: what they ask the services and how they
show the answers (services faked)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

import httpx

from tests.console.support import FakeServices, signed_in
from tests.support.problems import problem_reply

SEGMENTS = {
    "model_version": "v1",
    "customers": 384,
    "segments": [
        {"segment": name, "customers": 96, "action": "Win them back."}
        for name in ("Champions", "At risk", "Lost")
    ],
}


def _row(customer_id: str, **changes: object) -> dict:
    return {
        "customer_id": customer_id,
        "churn_probability": 0.71,
        "risk_band": "high",
        "predicted_ltv": 1234.5,
        "ltv_low": 100.0,
        "ltv_high": 2000.0,
        "value_tier": "VIP",
        "segment": "At risk",
        "action": "Win them back.",
        "revenue_at_risk": 876.5,
        "features_as_of": "2011-12-09T12:50:00Z",
        **changes,
    }


def _listing(*ids: str, next_cursor: str | None = None, total: int | None = None) -> dict:
    return {
        "customers": [_row(i) for i in ids],
        "total": len(ids) if total is None else total,
        "next_cursor": next_cursor,
        "model_version": "v1",
    }


def _fake(listing: object = None, segments: object = SEGMENTS) -> FakeServices:
    return FakeServices(
        routes={
            ("scoring", "GET", "/v1/segments"): segments,
            ("scoring", "GET", "/v1/customers"): listing or _listing("c1", "c2"),
        }
    )


def _params(request: httpx.Request) -> list[tuple[str, str]]:
    return sorted(parse_qsl(request.url.query.decode(), keep_blank_values=True))


# --- the list ---------------------------------------------------------------------------------


def test_every_filter_reaches_scoring_exactly_with_several_tiers_and_bands_at_once() -> None:
    fake = _fake()
    client = signed_in(fake)
    page = client.get(
        "/customers?segment=At+risk&risk_band=high&risk_band=medium&value_tier=High"
        "&value_tier=VIP&min_churn_pct=33.3&max_churn_pct=90&min_ltv=100&max_ltv=5000.5"
        "&sort=predicted_ltv&limit=25"
    )
    assert page.status_code == 200, page.text
    [sent] = fake.requests_to("scoring", "/v1/customers")
    assert _params(sent) == sorted(
        [
            ("segment", "At risk"),
            ("risk_band", "high,medium"),
            ("value_tier", "High,VIP"),
            # Typed in percent, sent as scoring's probability without a float's rounding.
            ("min_churn", "0.333"),
            ("max_churn", "0.9"),
            ("min_ltv", "100"),
            ("max_ltv", "5000.5"),
            ("sort", "predicted_ltv"),
            ("limit", "25"),
        ]
    )
    assert sent.headers["authorization"] == "Bearer good-key"
    # The form shows the filter it applied, so a reload shows the same list.
    html = page.text
    assert re.search(r'<option value="At risk" selected>', html)
    for name, value in (("risk_band", "high"), ("risk_band", "medium"), ("value_tier", "High")):
        assert re.search(rf'name="{name}" value="{value}" checked', html), (name, value)
    assert not re.search(r'name="risk_band" value="low" checked', html)
    assert 'id="min_churn_pct" name="min_churn_pct"' in html and 'value="33.3"' in html
    assert 'value="5000.5"' in html
    assert '<option value="predicted_ltv" selected>' in html
    assert 'data-customer="c1"' in html and 'href="/customers/c1"' in html


def test_a_comma_list_in_the_url_is_the_same_filter_as_repeated_parameters() -> None:
    fake = _fake()
    client = signed_in(fake)
    client.get("/customers?value_tier=High,VIP&risk_band=high")
    client.get("/customers?value_tier=High&value_tier=VIP&risk_band=high")
    first, second = fake.requests_to("scoring", "/v1/customers")
    assert _params(first) == _params(second)
    assert ("value_tier", "High,VIP") in _params(first)


def test_no_filter_asks_for_the_whole_list_in_the_default_order() -> None:
    fake = _fake()
    signed_in(fake).get("/customers")
    [sent] = fake.requests_to("scoring", "/v1/customers")
    assert _params(sent) == [("limit", "50"), ("sort", "revenue_at_risk")]


def test_paging_follows_scorings_cursor_and_goes_back_through_the_cursors_before() -> None:
    fake = _fake(listing=_listing("c1", "c2", next_cursor="CUR-2", total=9))
    client = signed_in(fake)
    first = client.get("/customers?risk_band=high")
    assert "page 1" in first.text and "Previous" not in first.text
    next_link = re.search(r'href="/customers\?([^"]+)"[^>]*rel="next"', first.text).group(1)
    assert dict(parse_qsl(next_link.replace("&amp;", "&"))) == {
        "risk_band": "high",
        "cursor": "CUR-2",
    }

    fake.routes[("scoring", "GET", "/v1/customers")] = _listing("c3", next_cursor="CUR-3", total=9)
    second = client.get("/customers?risk_band=high&cursor=CUR-2")
    sent = fake.requests_to("scoring", "/v1/customers")[-1]
    assert ("cursor", "CUR-2") in _params(sent) and ("risk_band", "high") in _params(sent)
    assert "page 2" in second.text
    third_link = re.search(r'href="/customers\?([^"]+)"[^>]*rel="next"', second.text).group(1)
    assert parse_qsl(third_link.replace("&amp;", "&")) == [
        ("risk_band", "high"),
        ("cursor", "CUR-3"),
        ("prev", "CUR-2"),
    ]
    back = re.search(r'href="/customers\?([^"]*)"[^>]*rel="prev"', second.text).group(1)
    assert parse_qsl(back.replace("&amp;", "&")) == [("risk_band", "high")]

    third = client.get("/customers?risk_band=high&cursor=CUR-3&prev=CUR-2")
    assert "page 3" in third.text
    back = re.search(r'href="/customers\?([^"]*)"[^>]*rel="prev"', third.text).group(1)
    assert parse_qsl(back.replace("&amp;", "&")) == [("risk_band", "high"), ("cursor", "CUR-2")]
    assert "First page" in third.text


def test_a_stale_cursor_starts_the_list_again_with_a_notice() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "cursor" in request.url.params:
            return problem_reply(422, "cursor", "was issued for other filters")
        return httpx.Response(200, json=_listing("c1"))

    fake = _fake(listing=answer)
    page = signed_in(fake).get("/customers?cursor=OLD&prev=OLDER")
    assert page.status_code == 200
    assert "no longer fits this list" in page.text and 'data-customer="c1"' in page.text
    assert "Previous" not in page.text


def test_htmx_gets_only_the_results_and_the_clean_url_to_push() -> None:
    fake = _fake()
    client = signed_in(fake)
    page = client.get(
        "/customers?segment=&risk_band=high&min_churn_pct=&max_churn_pct=&min_ltv=&max_ltv="
        "&sort=revenue_at_risk&limit=50",
        headers={"HX-Request": "true"},
    )
    assert page.status_code == 200
    assert "<html" not in page.text and "<form" not in page.text
    assert 'data-customer="c1"' in page.text
    assert page.headers["HX-Push-Url"] == "/customers?risk_band=high"
    # htmx restoring a page it holds no copy of gets the whole page.
    restored = client.get(
        "/customers?risk_band=high",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restored.text and "<form" in restored.text


def test_a_churn_bound_that_is_not_a_percentage_is_explained_without_asking_scoring() -> None:
    fake = _fake()
    client = signed_in(fake)
    page = client.get("/customers?min_churn_pct=150")
    assert page.status_code == 422
    assert "Churn from: enter a percentage from 0 to 100." in page.text
    backwards = client.get("/customers?min_churn_pct=60&max_churn_pct=20")
    assert "Churn to: 20% is below Churn from 60%." in backwards.text
    # The form stays, with what was typed, so it can be corrected.
    assert 'value="60"' in backwards.text and "<form" in backwards.text
    assert fake.requests_to("scoring", "/v1/customers") == []
    # In an htmx swap the message must be swapped in: htmx leaves a 4xx answer out.
    swapped = client.get("/customers?min_churn_pct=nan", headers={"HX-Request": "true"})
    assert swapped.status_code == 200 and "enter a percentage" in swapped.text


def test_scorings_422_is_shown_next_to_the_list_in_the_forms_words() -> None:
    fake = _fake(listing=problem_reply(422, "query.max_ltv", "10 is below min_ltv 100"))
    page = signed_in(fake).get("/customers?min_ltv=100&max_ltv=10")
    assert page.status_code == 422
    assert "Predicted LTV to: 10 is below Predicted LTV from 100" in page.text


def test_expected_orders_and_next_order_bounds_reach_scoring_and_stay_in_the_form() -> None:
    fake = _fake(
        listing=_listing("c1")
        | {"customers": [_row("c1", expected_orders=2.44, next_order_by="2012-01-02")]}
    )
    page = signed_in(fake).get(
        "/customers?min_orders=1.5&max_orders=4&next_order_from=2011-12-01"
        "&next_order_to=2012-01-31&sort=expected_orders"
    )
    assert page.status_code == 200, page.text
    [sent] = fake.requests_to("scoring", "/v1/customers")
    assert _params(sent) == sorted(
        [
            ("min_orders", "1.5"),
            ("max_orders", "4"),
            ("next_order_from", "2011-12-01"),
            ("next_order_to", "2012-01-31"),
            ("sort", "expected_orders"),
            ("limit", "50"),
        ]
    )
    html = page.text
    assert 'id="next_order_to" name="next_order_to" type="date" value="2012-01-31"' in html
    assert (
        'id="min_orders" name="min_orders" type="number" min="0" step="any" inputmode="decimal" value="1.5"'
        in html
    )
    assert '<option value="expected_orders" selected>' in html
    # The CSV link carries the same bounds.
    assert "min_orders=1.5" in re.search(r'href="/customers.csv\?([^"]*)"', html).group(1)
    row = re.search(r'<tr data-customer="c1">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="num">2.4</td>' in row and "<td>2012-01-02</td>" in row


def test_a_customer_without_a_next_order_date_shows_a_dash_in_the_list() -> None:
    fake = _fake(
        listing=_listing("c1")
        | {"customers": [_row("c1", expected_orders=0.2, next_order_by=None)]}
    )
    row = re.search(
        r'<tr data-customer="c1">(.*?)</tr>', signed_in(fake).get("/customers").text, re.S
    ).group(1)
    assert '<td class="num">0.2</td>' in row and "<td>–</td>" in row


def test_scorings_422_on_a_date_bound_is_shown_in_the_forms_words() -> None:
    fake = _fake(
        listing=problem_reply(
            422, "query.next_order_to", "2011-01-01 is before next_order_from 2012-01-01"
        )
    )
    page = signed_in(fake).get("/customers?next_order_from=2012-01-01&next_order_to=2011-01-01")
    assert page.status_code == 422
    assert "Next order to: 2011-01-01 is before" in page.text


def test_an_empty_tenant_and_a_tenant_without_a_model_see_the_first_upload_step() -> None:
    empty = dict(SEGMENTS, customers=0)
    fake = _fake(listing=_listing(), segments=empty)
    page = signed_in(fake).get("/customers")
    assert page.status_code == 200 and "Upload your first export" in page.text
    no_model = problem_reply(503, None, "no champion model for 'other'")
    fake = _fake(segments=no_model)
    page = signed_in(fake).get("/customers")
    assert "Upload your first export" in page.text


def test_no_match_says_so_and_offers_to_clear_the_filters() -> None:
    fake = _fake(listing=_listing())
    page = signed_in(fake).get("/customers?segment=Lost&value_tier=VIP")
    assert "No customer matches these filters" in page.text
    assert "Download CSV" not in page.text


# --- the CSV ----------------------------------------------------------------------------------

HEADER = b"customer_id,churn_probability,risk_band\n"


def test_the_csv_is_scorings_csv_of_the_whole_filter_page_after_page() -> None:
    pages = {
        None: (HEADER + b"c1,0.9,high\nc2,0.8,high\n", "NEXT-1"),
        "NEXT-1": (HEADER + b"'=cmd,0.7,high\n", "NEXT-2"),
        "NEXT-2": (HEADER + b"c4,0.6,high\n", None),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        body, next_cursor = pages[request.url.params.get("cursor")]
        headers = {"X-Total-Count": "4", "Content-Type": "text/csv; charset=utf-8"}
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        return httpx.Response(200, content=body, headers=headers)

    fake = _fake(listing=answer)
    client = signed_in(fake)
    download = client.get(
        "/customers.csv?risk_band=high&value_tier=High&value_tier=VIP&min_churn_pct=50"
        "&sort=churn_probability&cursor=IGNORED&prev=X&limit=25"
    )
    assert download.status_code == 200
    assert download.content == HEADER + b"c1,0.9,high\nc2,0.8,high\n'=cmd,0.7,high\nc4,0.6,high\n"
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="customers.csv"'
    assert download.headers["x-total-count"] == "4"
    sent = fake.requests_to("scoring", "/v1/customers")
    assert len(sent) == 3
    for request, cursor in zip(sent, (None, "NEXT-1", "NEXT-2"), strict=True):
        assert request.headers["authorization"] == "Bearer good-key"
        assert request.headers["accept"] == "text/csv"
        want = [
            ("limit", "10000"),
            ("min_churn", "0.5"),
            ("risk_band", "high"),
            ("sort", "churn_probability"),
            ("value_tier", "High,VIP"),
        ]
        assert _params(request) == sorted(want + ([("cursor", cursor)] if cursor else []))
    # The key stays on the server.
    assert b"good-key" not in download.content
    assert all("good-key" not in value for value in download.headers.values())


def test_a_one_page_csv_is_scorings_bytes_unchanged() -> None:
    body = HEADER + "c1,0.9,high\nnaïve,0.1,low\n".encode()
    fake = _fake(
        listing=httpx.Response(
            200, content=body, headers={"Content-Type": "text/csv; charset=utf-8"}
        )
    )
    download = signed_in(fake).get("/customers.csv")
    assert download.content == body
    [sent] = fake.requests_to("scoring", "/v1/customers")
    assert _params(sent) == [("limit", "10000"), ("sort", "revenue_at_risk")]


def test_the_csv_needs_a_session() -> None:
    fake = _fake()
    client = signed_in(fake)
    client.cookies.clear()
    response = client.get("/customers.csv", follow_redirects=False)
    assert response.status_code == 303
    assert fake.requests_to("scoring", "/v1/customers") == []


# --- one customer ---------------------------------------------------------------------------

SCORE = {
    "customer_id": "c1",
    "churn_probability": 0.7123,
    "risk_band": "high",
    "predicted_ltv": 1234.5,
    "ltv_low": 100.0,
    "ltv_high": 2000.0,
    "ltv_horizon_days": 365,
    "value_tier": "VIP",
    "segment": "At risk",
    "action": "Win them back with a personal offer.",
    "revenue_at_risk": 879.3,
    "reasons": {
        "churn": [
            {
                "feature": "recency_days",
                "text": "no order for 143 days, 3x longer than usual",
                "direction": "raises",
                "contribution": 1.2,
            }
        ],
        "ltv": [
            {
                "feature": "monetary",
                "text": "spent 4,210 in total",
                "direction": "raises",
                "contribution": 0.4,
            }
        ],
    },
    "features_as_of": "2011-12-09T12:50:00Z",
    "model_version": "v1",
}
FEATURES = {
    "tenant_id": "default",
    "customer_id": "c1",
    "as_of": "2011-12-09T12:50:00Z",
    "features": {
        "recency_days": 143.0,
        "frequency": 6.0,
        "monetary": 4210.0,
        "gap_mean_days": 47.25,
        "days_past_expected_order": 95.75,
        "cancellation_rate": 0.125,
        "season_sin": -0.259,
        "season_cos": 0.966,
    },
    "received_as_of": "2011-12-09T12:50:00Z",
    "computed_at": "2011-12-09T12:50:00Z",
}
PROFILE = {
    "model_version": "v1",
    "segment": "At risk",
    "as_of": "2011-12-09T12:50:00Z",
    "customers": 96,
    "features": [
        {"feature": "recency_days", "label": "Days since the last purchase", "unit": "days",
         "p25": 60.0, "median": 88.5, "p75": 120.0},
        {"feature": "frequency", "label": "Orders so far", "unit": "orders",
         "p25": 2.0, "median": 4.0, "p75": 7.0},
        {"feature": "monetary", "label": "Net spend so far", "unit": "currency",
         "p25": 500.0, "median": 1300.0, "p75": 2500.0},
    ],
}  # fmt: skip
ORDERS = {
    "customer_id": "c1",
    "orders": [
        {"order_id": "C9", "occurred_at": "2011-07-20T10:00:00Z", "lines": 1, "net_value": -20.5,
         "cancelled": True, "currency": None},
        {"order_id": "O8", "occurred_at": "2011-07-19T10:00:00Z", "lines": 12, "net_value": 310.25,
         "cancelled": False, "currency": "GBP"},
    ],
    "next_cursor": "ORD-2",
}  # fmt: skip
HISTORY = {
    "customer_id": "c1",
    "kept": 100,
    "changes": [
        {"event_type": "CustomerScore", "tenant_id": "default", "customer_id": "c1",
         "churn_probability": 0.7123, "risk_band": "high", "predicted_ltv": 1234.5,
         "ltv_low": 100.0, "ltv_high": 2000.0, "value_tier": "VIP", "segment": "At risk",
         "action": "Win them back.", "reasons": [], "changed": ["risk_band", "segment"],
         "model_version": "v1", "features_as_of": "2011-12-09T12:50:00Z",
         "scored_at": "2011-12-10T08:00:00Z"},
    ],
}  # fmt: skip


def _customer_fake() -> FakeServices:
    routes = {
        ("scoring", "GET", "/v1/customers/c1/score"): SCORE,
        ("scoring", "GET", "/v1/customers/c1/features"): FEATURES,
        ("scoring", "GET", "/v1/customers/c1/score/history"): HISTORY,
        ("scoring", "GET", "/v1/segments/At risk/profile"): PROFILE,
        ("features", "GET", "/v1/customers/c1/orders"): ORDERS,
    }
    return FakeServices(routes=routes)


def test_the_customer_page_shows_the_apis_scores_reasons_orders_and_segment() -> None:
    fake = _customer_fake()
    page = signed_in(fake).get("/customers/c1")
    assert page.status_code == 200, page.text
    html = page.text
    assert "71.2%" in html and "band-high" in html
    assert '<p class="value">1,234</p>' in html and '<p class="value">879</p>' in html
    assert "Predicted LTV, next 365 days" in html and "80% interval 100 – 2,000" in html
    assert "Win them back with a personal offer." in html
    assert "No order for 143 days, 3x longer than usual" in html
    assert "Spent 4,210 in total" in html
    # The next order from the usual gap, and the last purchase (not the cancellation after it).
    assert "Usually orders every</dt><dd>47 days" in html
    assert "was due 96 days ago" in html
    assert "Last purchase</dt><dd>2011-07-19" in html
    # The features beside the segment's, in words.
    row = re.search(r'<tr data-feature="recency_days">(.*?)</tr>', html, re.S).group(1)
    assert "Days since the last purchase" in row and "143" in row and "88" in row
    assert "60 – 120" in row and "above most" in row
    assert "12.5%" in html  # cancellation_rate as a share
    # The time of year is the clock's, the same for every customer: no row beside the segment.
    assert 'data-feature="cancellation_rate"' in html
    assert 'data-feature="season_sin"' not in html and "Time of year" not in html
    # Orders: the table and the chart's own data, cancellations apart.
    assert "cancellation" in html and "310.25" in html and "-20.50" in html
    option = json.loads(re.search(r'id="orders-chart-option">(.*?)</script>', html).group(1))
    orders, cancellations = option["series"]
    assert orders["data"] == [["2011-07-19T10:00:00Z", 310.25, "O8"]]
    assert cancellations["data"] == [["2011-07-20T10:00:00Z", -20.5, "C9"]]
    assert 'role="img" aria-label="Timeline' in html
    # The score history.
    assert "risk band, segment" in html and "2011-12-10" in html
    # What it asked: the segment's profile by a quoted name, the orders in two sizes.
    [profile] = fake.requests_to("scoring", "/v1/segments/At risk/profile")
    assert profile.url.raw_path == b"/v1/segments/At%20risk/profile"
    limits = sorted(
        r.url.params["limit"] for r in fake.requests_to("features", "/v1/customers/c1/orders")
    )
    assert limits == ["20", "500"]


def test_order_pages_follow_the_features_cursor_as_an_htmx_fragment() -> None:
    fake = _customer_fake()
    client = signed_in(fake)
    page = client.get("/customers/c1")
    older = re.search(r'hx-get="(/customers/c1\?orders_cursor=ORD-2)"', page.text).group(1)
    fragment = client.get(older, headers={"HX-Request": "true", "HX-Target": "orders"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section class="card" id="orders"')
    sent = fake.requests_to("features", "/v1/customers/c1/orders")[-1]
    assert sent.url.params["cursor"] == "ORD-2" and sent.url.params["limit"] == "20"
    # Only the orders were asked for.
    assert len(fake.requests_to("scoring", "/v1/customers/c1/score")) == 1
    assert "Newer orders" in fragment.text and "Page 2" in fragment.text


def test_an_unknown_customer_is_a_friendly_404() -> None:
    fake = _customer_fake()
    page = signed_in(fake).get("/customers/nobody%3Cb%3E")
    assert page.status_code == 404
    assert "No customer “nobody&lt;b&gt;”" in page.text
    assert 'href="/customers"' in page.text and 'name="id"' in page.text
    [asked] = fake.requests_to("scoring", "/v1/customers/nobody<b>/score")
    assert asked.url.raw_path == b"/v1/customers/nobody%3Cb%3E/score"


def test_an_id_is_one_path_segment_when_the_console_asks_the_services() -> None:
    fake = _customer_fake()
    client = signed_in(fake)
    client.get("/customers/a%2F..%2Fsegments")
    [asked] = [r for s, r in fake.sent if s == "scoring" and r.url.path.endswith("/score")]
    assert asked.url.raw_path == b"/v1/customers/a%2F..%2Fsegments/score"
    # A dot segment would climb out of /v1/customers/: it is no customer, and nothing is asked.
    before = len(fake.sent)
    for dots in ("%2E", "%2E%2E"):
        page = client.get(f"/customers/{dots}")
        assert page.status_code == 404 and "No customer" in page.text
    assert len(fake.sent) == before


def test_the_customer_page_stands_when_the_features_service_is_down() -> None:
    fake = _customer_fake()
    fake.down.add("features")
    page = signed_in(fake).get("/customers/c1")
    assert page.status_code == 200
    assert "71.2%" in page.text
    assert "The order history cannot be shown" in page.text
    assert "features is not answering" in page.text


def test_open_a_customer_by_id_goes_to_their_page() -> None:
    client = signed_in(_customer_fake())
    response = client.get("/customer?id=+a+b/c+", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/customers/a%20b%2Fc"
    assert client.get("/customer?id=", follow_redirects=False).headers["location"] == "/customers"


def test_the_customer_page_shows_the_models_expected_orders_and_next_order_date() -> None:
    fake = _customer_fake()
    fake.routes[("scoring", "GET", "/v1/customers/c1/score")] = SCORE | {
        "expected_orders": 2.44,
        "churn_horizon_days": 90,
        "next_order_by": "2012-01-02",
    }
    html = signed_in(fake).get("/customers/c1").text
    assert "Orders expected, next 90 days</dt><dd>2.4</dd>" in html
    assert "Likely to order again by</dt>\n      <dd>2012-01-02</dd>" in html
    assert "The order model's forecast" in html and "This model forecasts no date" not in html
    # 71% churn with 2.4 orders expected over the same 90 days: the page says they disagree.
    assert "The two forecasts disagree for this customer" in html
    # Below a 50% chance within a year: no date, said in words.
    fake.routes[("scoring", "GET", "/v1/customers/c1/score")] = SCORE | {
        "expected_orders": 0.1,
        "churn_horizon_days": 90,
        "next_order_by": None,
    }
    html = signed_in(fake).get("/customers/c1").text
    assert "not within a year (below a 50% chance)" in html


def test_reasons_say_which_side_of_the_typical_customer_the_score_is_on() -> None:
    fake = _customer_fake()
    html = signed_in(fake).get("/customers/c1").text
    assert "raised this customer's churn probability above the model's typical" in html
    lowered = {"feature": "recency_days", "text": "last order 3 days ago", "contribution": -0.9}
    fake.routes[("scoring", "GET", "/v1/customers/c1/score")] = SCORE | {
        "reasons": SCORE["reasons"] | {"churn": [lowered | {"direction": "lowers"}]}
    }
    html = signed_in(fake).get("/customers/c1").text
    assert "lowered this customer's churn probability below the model's typical" in html


def test_reasons_name_the_typical_customers_churn_probability() -> None:
    """At 86% churn, three "lowers" read as a contradiction unless the page says lower than
    what: the typical customer at this time of year, 92% on the Online Retail slice."""
    fake = _customer_fake()
    lowered = {"feature": "q4_spend_share", "text": "0% of spend in October-December"}
    fake.routes[("scoring", "GET", "/v1/customers/c1/score")] = SCORE | {
        "churn_probability": 0.861,
        "reasons": SCORE["reasons"]
        | {
            "churn": [lowered | {"direction": "lowers", "contribution": -0.5}],
            "churn_baseline": 0.9177,
        },
    }
    html = signed_in(fake).get("/customers/c1").text
    assert (
        "lowered this customer's churn probability below the model's typical customer's"
        " (91.8% at this time of year)" in html
    )


def test_no_disagreement_notice_when_churn_and_expected_orders_agree() -> None:
    fake = _customer_fake()
    fake.routes[("scoring", "GET", "/v1/customers/c1/score")] = SCORE | {
        "churn_probability": 0.2,
        "expected_orders": 2.44,
        "churn_horizon_days": 90,
        "next_order_by": "2012-01-02",
    }
    html = signed_in(fake).get("/customers/c1").text
    assert "Orders expected, next 90 days" in html and "forecasts disagree" not in html


def test_orders_on_one_day_are_no_usual_gap() -> None:
    """Customer 17772: two invoices minutes apart are two orders, not "one purchase so far"."""
    same_day = {"gap_mean_days": 0.0056, "frequency": 2.0, "recency_days": 10.07}
    features = FEATURES | {"features": FEATURES["features"] | same_day | {"tenure_days": 10.08}}
    fake = _customer_fake()
    fake.routes[("scoring", "GET", "/v1/customers/c1/features")] = features
    html = signed_in(fake).get("/customers/c1").text
    assert "Usually orders every" not in html
    assert "none yet: 2 orders, all within one day" in html and "one purchase" not in html
    one = FEATURES | {"features": FEATURES["features"] | {"gap_mean_days": 0.0, "frequency": 1.0}}
    fake.routes[("scoring", "GET", "/v1/customers/c1/features")] = one
    assert "none yet: one order so far" in signed_in(fake).get("/customers/c1").text


def test_a_model_without_an_order_forecast_says_the_date_is_the_usual_gap() -> None:
    html = signed_in(_customer_fake()).get("/customers/c1").text
    assert "Orders expected" not in html
    assert "This model forecasts no date" in html


def test_a_next_order_due_within_a_day_is_due_now_and_never_minus_zero() -> None:
    features = FEATURES | {
        "features": FEATURES["features"] | {"days_past_expected_order": -0.2, "recency_days": 47.0}
    }
    fake = _customer_fake()
    fake.routes[("scoring", "GET", "/v1/customers/c1/features")] = features
    html = signed_in(fake).get("/customers/c1").text
    assert "due about now" in html
    assert ">-0<" not in html
