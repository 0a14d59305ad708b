"""The segments page: what it asks scoring and the trainer, and how it shows their answers."""

from __future__ import annotations

import html
import json
import re

import httpx

from retention_console.pages.segments import POINTS
from tests.console.support import FakeServices, console, signed_in
from tests.support.problems import problem_reply

SEGMENTS = {
    "model_version": "v7",
    "customers": 384,
    "segments": [
        {
            "segment": "Champions",
            "customers": 52,
            "revenue_share": 0.6033995,
            "mean_churn_probability": 0.1895469,
            "revenue_at_risk": 2046.0578,
            "predicted_ltv": 30994.0985,
            "action": "Reward them: early access, loyalty perks, ask for referrals.",
        },
        {
            "segment": "Can't lose",
            "customers": 286,
            "revenue_share": 0.3962,
            "mean_churn_probability": 0.61,
            "revenue_at_risk": 1328.0853,
            "predicted_ltv": 2543.0072,
            "action": "Win them back at any reasonable cost: call, premium offer.",
        },
        {
            "segment": "New",
            "customers": 46,
            "revenue_share": 0.0004,
            "mean_churn_probability": None,
            "revenue_at_risk": 0.41,
            "predicted_ltv": 0.44,
            "action": "Onboard: welcome series, product guidance, a first-repeat offer.",
        },
    ],
}
POINTS_ANSWER = {
    "model_version": "v7",
    "as_of": "2011-12-09T12:50:00Z",
    "customers": 384,
    "segments": ["Champions", "Can't lose", "New"],
    "points": [
        {
            "customer_id": "12347",
            "segment": "Champions",
            "recency_days": 1.5,
            "frequency": 7.0,
            "monetary": 4310.0,
        },
        {
            "customer_id": "<img src=x>",
            "segment": "New",
            "recency_days": 281.92,
            "frequency": 1.0,
            "monetary": -12.5,
        },
    ],
}
MIGRATION = {
    "tenant_id": "default",
    "model_version": "v7",
    "from": "2011-09-10",
    "to": "2011-12-09",
    "segments": ["Not yet a customer", "Champions", "Can't lose", "New"],
    "flows": [
        {"from": "Not yet a customer", "to": "New", "customers": 24, "revenue": 17343.2},
        {"from": "Champions", "to": "Champions", "customers": 25, "revenue": 212593.75},
        {"from": "New", "to": "New", "customers": 3, "revenue": 120.0},
        {"from": "New", "to": "Can't lose", "customers": 12, "revenue": -2096.04},
    ],
    "customers_at_from": 343,
    "customers_at_to": 384,
}


TABLE = ("scoring", "GET", "/v1/segments")
POINTS_ROUTE = ("scoring", "GET", "/v1/segments/points")
MIGRATION_ROUTE = ("trainer", "GET", "/v1/segments/migration")


def _fake(answers: dict[tuple[str, str, str], object] | None = None) -> FakeServices:
    routes = {TABLE: SEGMENTS, POINTS_ROUTE: POINTS_ANSWER, MIGRATION_ROUTE: MIGRATION}
    return FakeServices(routes={**routes, **(answers or {})})


def _chart(page: str, chart_id: str) -> dict:
    found = re.search(
        rf'<script type="application/json" id="{chart_id}-option">(.*?)</script>', page, re.S
    )
    assert found, f"no chart {chart_id}"
    return json.loads(found.group(1))


def _row(page: str, segment: str) -> list[str]:
    """The text of each cell of a segment's row."""
    found = re.search(
        rf'<tr data-segment="{re.escape(html.escape(segment))}">(.*?)</tr>', page, re.S
    )
    assert found, f"no row for {segment}"
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", found.group(1), re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]


def test_the_page_asks_scoring_and_the_trainer_with_the_users_key() -> None:
    fake = _fake()
    page = signed_in(fake).get("/segments")
    assert page.status_code == 200, page.text
    (points,) = fake.requests_to("scoring", "/v1/segments/points")
    assert dict(points.url.params) == {"limit": str(POINTS)}
    (migration,) = fake.requests_to("trainer", "/v1/segments/migration")
    # No dates chosen: the trainer's defaults, shown back in the date inputs.
    assert dict(migration.url.params) == {}
    assert 'name="from" type="date" value="2011-09-10"' in page.text
    assert 'name="to" type="date" value="2011-12-09"' in page.text
    for request in (points, migration, *fake.requests_to("scoring", "/v1/segments")):
        assert request.headers["authorization"] == "Bearer good-key"


def test_the_table_shows_the_apis_numbers_and_links_each_segment_to_its_customers() -> None:
    page = signed_in(_fake()).get("/segments").text
    assert _row(page, "Champions") == [
        "Champions",
        "52",
        "60.3%",
        "19.0%",
        "2,046",
        "30,994",
        "Reward them: early access, loyalty perks, ask for referrals.",
    ]
    assert _row(page, "New")[1:4] == ["46", "0.0%", "–"]
    assert 'href="/customers?segment=Can%27t%20lose"' in page
    assert 'href="/customers?segment=Champions"' in page


def test_the_segment_chart_has_one_mark_per_segment_and_opens_its_customers() -> None:
    page = signed_in(_fake()).get("/segments").text
    assert re.search(
        r'id="segment-bars"[^>]*data-click-url="/customers\?segment=\{name\}"[^>]*data-marks="3"',
        page,
    )
    option = _chart(page, "segment-bars")
    assert option["yAxis"]["data"] == ["Champions", "Can't lose", "New"]
    (series,) = option["series"]
    assert [item["value"] for item in series["data"]] == [52, 286, 46]
    assert series["data"][0]["label"]["formatter"] == "52 · 60.3% of revenue"
    # The text alternative says the same.
    assert "Champions: 52 customers, 60.3% of revenue" in page


def test_the_rfm_chart_draws_every_point_by_segment_and_links_to_the_customer() -> None:
    page = signed_in(_fake()).get("/segments").text
    assert re.search(r'id="rfm"[^>]*data-click-url="/customers/\{name\}"[^>]*data-marks="2"', page)
    option = _chart(page, "rfm")
    series = {s["name"]: s["data"] for s in option["series"]}
    assert set(series) == {"Champions", "New"}  # no empty series for a segment without points
    (champion,) = series["Champions"]
    assert champion["link"] == "12347"
    assert champion["value"] == [1.5, 7.0, 4310.0]
    (new,) = series["New"]
    # An id from upstream travels as data (the browser escapes it into the tooltip, named by the
    # option rather than sent per point), never as markup in the page.
    assert new["name"] == "<img src=x>"
    assert option["tooltip"]["formatter"] == "fn:rfm-point"
    assert "<img src=x>" not in page
    assert new["symbolSize"] < champion["symbolSize"]  # a negative spend is the smallest dot
    assert "All 384 customers" not in page  # 2 points of 384: a sample, said so
    assert "A fixed sample of 2 of 384 customers" in page
    assert 'href="/segments/points.csv"' in page


def test_the_migration_is_a_sankey_without_cycles_and_its_flows_a_table() -> None:
    page = signed_in(_fake()).get("/segments").text
    option = _chart(page, "migration-chart")
    (sankey,) = option["series"]
    nodes = {node["name"]: node for node in sankey["data"]}
    # Left and right are distinct nodes: "New" then and now, so New → New is no cycle.
    assert set(nodes) == {
        "Not yet a customer",
        "Champions (then)",
        "New (then)",
        "Champions (now)",
        "Can't lose (now)",
        "New (now)",
    }
    assert {n["depth"] for n in sankey["data"] if n["name"].endswith("(now)")} == {1}
    links = {(link["source"], link["target"]): link["value"] for link in sankey["links"]}
    assert links == {
        ("Not yet a customer", "New (now)"): 24,
        ("Champions (then)", "Champions (now)"): 25,
        ("New (then)", "New (now)"): 3,
        ("New (then)", "Can't lose (now)"): 12,
    }
    assert all(not link["source"].endswith("(now)") for link in sankey["links"])
    # Only a segment now opens its customers; flows and "then" nodes lead nowhere.
    assert nodes["New (now)"]["link"] == "New"
    assert nodes["New (then)"]["link"] is None
    assert all(link["link"] is None for link in sankey["links"])
    rows = re.findall(
        r"<tr>\s*<td>(.*?)</td>\s*<td><a[^>]*>(.*?)</a></td>\s*"
        r'<td class="num">(.*?)</td>\s*<td class="num">(.*?)</td>',
        page,
    )
    assert [tuple(html.unescape(c) for c in row) for row in rows] == [
        ("Not yet a customer", "New", "24", "17,343"),
        ("Champions", "Champions", "25", "212,594"),
        ("New", "New", "3", "120"),
        ("New", "Can't lose", "12", "-2,096"),
    ]
    assert "343 customers then, 384 now" in page


def test_other_dates_swap_only_the_migration_and_push_the_pages_address() -> None:
    fake = _fake()
    client = signed_in(fake)
    fragment = client.get(
        "/segments/migration",
        params={"from": "2011-06-01", "to": "2011-12-01"},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "migration-chart" in fragment.text
    assert fragment.headers["hx-push-url"] == "/segments?from=2011-06-01&to=2011-12-01"
    (asked,) = fake.requests_to("trainer", "/v1/segments/migration")
    assert dict(asked.url.params) == {"from": "2011-06-01", "to": "2011-12-01"}
    assert fake.requests_to("scoring", "/v1/segments") == []
    # Without htmx (a bookmarked fragment address): the whole page with those dates.
    whole = client.get("/segments/migration?from=2011-06-01", follow_redirects=False)
    assert whole.status_code == 303 and whole.headers["location"] == "/segments?from=2011-06-01"
    page = client.get("/segments?from=2011-06-01&to=2011-12-01")
    assert dict(fake.requests_to("trainer", "/v1/segments/migration")[-1].url.params) == {
        "from": "2011-06-01",
        "to": "2011-12-01",
    }
    assert page.status_code == 200


def test_a_date_the_trainer_refuses_is_a_message_in_the_card() -> None:
    refused = problem_reply(422, "from", "must be before to (2011-12-09)")
    client = signed_in(_fake({MIGRATION_ROUTE: refused}))
    fragment = client.get(
        "/segments/migration", params={"from": "2011-12-30"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "must be before to (2011-12-09)" in fragment.text
    # On the whole page the segments still show.
    page = client.get("/segments?from=2011-12-30")
    assert page.status_code == 200 and 'data-segment="Champions"' in page.text
    assert 'value="2011-12-30"' in page.text  # the date as the user typed it, to correct


def test_without_a_champion_at_the_trainer_the_rest_of_the_page_still_shows() -> None:
    no_model = problem_reply(409, "model", "no champion model yet; train one first")
    page = signed_in(_fake({MIGRATION_ROUTE: no_model})).get("/segments")
    assert page.status_code == 200
    assert "no champion model yet; train one first" in page.text
    assert 'data-segment="Champions"' in page.text


def test_a_stopped_trainer_is_a_message_in_the_card_not_a_broken_page() -> None:
    fake = _fake()
    fake.down.add("trainer")
    page = signed_in(fake).get("/segments")
    assert page.status_code == 200
    assert "The trainer is not answering" in page.text
    assert 'data-segment="Champions"' in page.text


def test_a_new_tenant_gets_the_upload_empty_state() -> None:
    no_champion = problem_reply(503, None, "no champion model for this tenant yet: train one")
    fake = _fake({TABLE: no_champion, POINTS_ROUTE: no_champion})
    page = signed_in(fake).get("/segments")
    assert page.status_code == 200
    assert "Upload your first export" in page.text


def test_a_model_without_customers_gets_the_empty_state_too() -> None:
    empty = {
        **SEGMENTS,
        "customers": 0,
        "segments": [{**row, "customers": 0, "revenue_share": 0.0} for row in SEGMENTS["segments"]],
    }
    points = {**POINTS_ANSWER, "customers": 0, "points": [], "as_of": None}
    page = signed_in(_fake({TABLE: empty, POINTS_ROUTE: points})).get("/segments")
    assert "Upload your first export" in page.text


def test_the_points_csv_is_scorings_bytes_fetched_with_the_users_key() -> None:
    body = b"customer_id,segment,recency_days,frequency,monetary\n'=1+1,New,3.5,1.0,10.0\n"

    def csv(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "text/csv"
        return httpx.Response(
            200, content=body, headers={"content-type": "text/csv; charset=utf-8"}
        )

    fake = _fake({POINTS_ROUTE: csv})
    download = signed_in(fake).get("/segments/points.csv")
    assert download.status_code == 200
    assert download.content == body
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    (asked,) = fake.requests_to("scoring", "/v1/segments/points")
    assert dict(asked.url.params) == {"limit": str(POINTS)}
    assert asked.headers["authorization"] == "Bearer good-key"


def test_the_csv_needs_a_session() -> None:
    response = console(_fake()).get("/segments/points.csv", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")
