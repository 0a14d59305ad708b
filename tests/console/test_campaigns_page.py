"""The campaigns page (ROI simulator) with scoring faked: what it asks scoring, what it shows."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.console.support import FakeServices, signed_in
from tests.support.problems import problem_reply

SEGMENTS = {
    "model_version": "v7",
    "customers": 384,
    "segments": [
        {"segment": "Champions", "customers": 52},
        {"segment": "Loyal", "customers": 88},
    ],
}


def scenario(save_rate: float, saved: float, gross: float, cost: float) -> dict:
    net = gross - cost
    return {
        "save_rate": save_rate,
        "expected_saved_revenue": saved,
        "expected_gross_profit": gross,
        "cost": cost,
        "net_profit": net,
        "roi": net / cost if cost else None,
    }


PLAN = {
    "model_version": "v7",
    "candidates": 312,
    "contacts_total": 40,
    "contacts": [
        {
            "customer_id": "=cmd|x",
            "churn_probability": 0.8123,
            "predicted_ltv": 1234.5,
            "risk_band": "high",
            "value_tier": "VIP",
            "segment": "Loyal",
            "expected_net_value": 92.25,
        },
        {
            "customer_id": "12583",
            "churn_probability": 0.5,
            "predicted_ltv": 400.0,
            "risk_band": "medium",
            "value_tier": "High",
            "segment": "Champions",
            "expected_net_value": 11.0,
        },
    ],
    "expected": scenario(0.25, 4321.75, 1728.7, 200.0),
    "pessimistic": scenario(0.125, 2160.875, 864.35, 200.0),
    "optimistic": scenario(0.375, 6482.625, 2593.05, 200.0),
}
CSV = "customer_id,churn_probability\n'=cmd|x,0.8123\n12583,0.5\n"


def plan_fake(
    plan: dict | None = None, routes: dict | None = None
) -> tuple[FakeServices, list[dict]]:
    """Scoring answering the segments and a plan; returns the bodies the plan was asked with."""
    bodies: list[dict] = []

    def planned(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if "text/csv" in request.headers.get("accept", ""):
            return httpx.Response(
                200, text=CSV, headers={"content-type": "text/csv; charset=utf-8"}
            )
        return httpx.Response(200, json=plan or PLAN)

    fake = FakeServices(
        routes={
            ("scoring", "GET", "/v1/segments"): SEGMENTS,
            ("scoring", "POST", "/v1/campaigns/plan"): planned,
            **(routes or {}),
        }
    )
    return fake, bodies


def figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-plan="(\w+)" data-value="([^"]*)"', html))


HTMX = {"HX-Request": "true"}
INPUTS = {
    "budget": "500",
    "cost_per_contact": "2.5",
    "save_rate": "7",
    "discount": "0",
    "margin": "40",
    "segment": "Loyal",
    "risk_band": ["high", "medium"],
    "value_tier": "VIP",
    "min_ltv": "100",
}
BODY = {
    "budget": 500.0,
    "cost_per_contact": 2.5,
    "save_rate": 0.07,
    "discount": 0.0,
    "margin": 0.4,
    "filters": {
        "segment": "Loyal",
        "risk_band": ["high", "medium"],
        "value_tier": ["VIP"],
        "min_ltv": 100.0,
    },
    "contacts_limit": 25,
}


def test_the_page_plans_the_defaults_and_shows_scorings_numbers() -> None:
    fake, bodies = plan_fake()
    page = signed_in(fake).get("/campaigns")
    assert page.status_code == 200
    assert bodies == [
        {
            "budget": 2000.0,
            "cost_per_contact": 5.0,
            "save_rate": 0.25,
            "discount": 0.1,
            "margin": 1.0,
            "filters": {},
            "contacts_limit": 25,
        }
    ]
    shown = figures(page.text)
    expected = PLAN["expected"]
    assert shown == {
        "contacts": "40",
        "saved_revenue": str(expected["expected_saved_revenue"]),
        "cost": str(expected["cost"]),
        "net_profit": str(expected["net_profit"]),
        "roi": str(expected["roi"]),
    }
    assert ">4,322<" in page.text and ">1,529<" in page.text  # saved revenue, net profit
    assert "The best 2 of 40 contacts" in page.text
    # The contacts are scoring's, escaped; the scenario table has one row per scenario.
    assert 'data-customer="=cmd|x"' in page.text
    for name in ("pessimistic", "expected", "optimistic"):
        assert f'data-scenario="{name}"' in page.text
    assert ">2,161<" in page.text  # pessimistic saved revenue
    option = re.search(r'id="scenario-chart-option">([^<]+)<', page.text).group(1)
    chart = json.loads(option)
    assert [s["name"] for s in chart["series"]] == ["Saved revenue", "Cost", "Net profit"]
    assert chart["series"][0]["data"] == [2160.88, 4321.75, 6482.62]
    # Every input has a label; the form is a GET (planning changes nothing).
    for name in ("budget", "cost_per_contact", "save_rate", "discount", "margin", "min_ltv"):
        assert f'<label for="{name}">' in page.text and f'id="{name}"' in page.text
    assert 'method="get" action="/campaigns" hx-get="/campaigns/plan"' in page.text
    assert '<option value="Loyal">Loyal (88)</option>' in page.text


def test_the_plan_asks_scoring_with_exactly_the_forms_inputs() -> None:
    fake, bodies = plan_fake()
    response = signed_in(fake).get("/campaigns/plan", params=INPUTS, headers=HTMX)
    assert response.status_code == 200
    assert bodies == [BODY]
    assert "<html" not in response.text  # a fragment for htmx
    # A margin below 100% shows the gross profit too, in the cards and the chart.
    assert figures(response.text)["gross_profit"] == str(PLAN["expected"]["expected_gross_profit"])
    # The page's URL follows the inputs, and the download carries the very same ones.
    url = response.headers["hx-replace-url"]
    assert url.startswith("/campaigns?")
    download = re.search(r'href="(/campaigns/contacts\.csv\?[^"]+)"', response.text).group(1)
    query = parse_qs(urlsplit(download.replace("&amp;", "&")).query)
    assert query == parse_qs(urlsplit(url).query)
    assert query["risk_band"] == ["high", "medium"] and query["save_rate"] == ["7"]


def test_the_contact_list_is_scorings_csv_of_the_same_inputs() -> None:
    fake, bodies = plan_fake()
    client = signed_in(fake)
    download = client.get("/campaigns/contacts.csv", params=INPUTS)
    assert download.status_code == 200
    assert download.text == CSV
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"].startswith("attachment")
    (sent,) = fake.requests_to("scoring", "/v1/campaigns/plan")
    assert sent.headers["accept"] == "text/csv"
    assert sent.headers["authorization"] == "Bearer good-key"
    assert bodies == [BODY]


def test_a_read_key_plans_and_downloads() -> None:
    fake, _ = plan_fake()
    fake.roles = ("read",)
    client = signed_in(fake)
    assert client.get("/campaigns").status_code == 200
    assert client.get("/campaigns/contacts.csv").status_code == 200


def test_inputs_out_of_range_are_named_and_scoring_is_not_asked() -> None:
    fake, bodies = plan_fake()
    client = signed_in(fake)
    bad = INPUTS | {"budget": "lots", "save_rate": "150", "margin": "0", "cost_per_contact": ""}
    response = client.get("/campaigns/plan", params=bad, headers=HTMX)
    assert response.status_code == 200  # htmx swaps it in place of the plan
    assert 'href="#budget">Budget must be a number.' in response.text
    assert "Save rate (%) must be at least 0% and at most 100%." in response.text
    assert "Gross margin (%) must be above 0% and at most 100%." in response.text
    assert "Enter the cost per contact." in response.text
    assert bodies == []
    csv = client.get("/campaigns/contacts.csv", params=bad)
    assert csv.status_code == 422 and "Budget must be a number." in csv.text
    assert bodies == []


def test_an_input_scoring_refuses_is_shown_in_place() -> None:
    refused = problem_reply(422, "filters.segment", "no segment 'Gone'")
    fake, _ = plan_fake(routes={("scoring", "POST", "/v1/campaigns/plan"): refused})
    response = signed_in(fake).get(
        "/campaigns/plan", params=INPUTS | {"segment": "Gone"}, headers=HTMX
    )
    assert response.status_code == 200
    assert "filters.segment: no segment &#39;Gone&#39;" in response.text
    assert 'role="alert"' in response.text


def test_an_roi_in_the_thousands_of_percent_has_a_thousands_separator() -> None:
    # A small budget on valuable customers: 50 spent, 727 saved, as the browser tour plans it.
    fake, _ = plan_fake({**PLAN, "expected": scenario(0.25, 727.0, 727.0, 50.0)})
    page = signed_in(fake).get("/campaigns")
    assert page.status_code == 200
    assert ">1,354%<" in page.text  # expected ROI: (727 - 50) / 50
    assert "1354%" not in page.text


def test_scoring_down_while_typing_is_a_message_in_place() -> None:
    fake, _ = plan_fake()
    client = signed_in(fake)
    fake.down.add("scoring")
    response = client.get("/campaigns/plan", params=INPUTS, headers=HTMX)
    assert response.status_code == 200
    assert "The scoring service is not answering" in response.text
    # Words for the user; the transport error's class name is for the log.
    assert "(it cannot be reached);" in response.text
    assert "ConnectError" not in response.text
    # The whole page needs scoring: the 503 page.
    assert client.get("/campaigns").status_code == 503


def test_without_a_model_the_page_is_the_first_upload_state() -> None:
    no_model = problem_reply(503, None, "no champion model for this tenant yet: upload data")
    fake, _ = plan_fake(
        routes={
            ("scoring", "GET", "/v1/segments"): no_model,
            ("scoring", "POST", "/v1/campaigns/plan"): no_model,
        }
    )
    page = signed_in(fake).get("/campaigns")
    assert page.status_code == 200
    assert "Upload your first export" in page.text


def test_a_plan_of_nobody_says_why() -> None:
    empty = PLAN | {
        "contacts_total": 0,
        "contacts": [],
        "expected": scenario(0.25, 0.0, 0.0, 0.0),
        "pessimistic": scenario(0.125, 0.0, 0.0, 0.0),
        "optimistic": scenario(0.375, 0.0, 0.0, 0.0),
    }
    fake, _ = plan_fake(empty)
    response = signed_in(fake).get(
        "/campaigns/plan", params=INPUTS | {"discount": "40"}, headers=HTMX
    )
    assert figures(response.text)["contacts"] == "0"
    assert figures(response.text)["roi"] == ""
    assert "The discount is as large as the gross margin" in response.text
    assert "contacts.csv" not in response.text
    nobody_matches = signed_in(plan_fake(empty | {"candidates": 0})[0]).get(
        "/campaigns/plan", params=INPUTS, headers=HTMX
    )
    assert "No customer matches these filters." in nobody_matches.text


def test_the_plan_url_opened_directly_goes_to_the_page() -> None:
    fake, _ = plan_fake()
    response = signed_in(fake).get("/campaigns/plan", params=INPUTS, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/campaigns?budget=500&")
