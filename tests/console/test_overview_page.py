"""The overview page: what it asks scoring and how it shows the answers (services faked)."""

from __future__ import annotations

import re

from retention_console.pages.overview import at_risk_list_query
from retention_shared.customer_lists import HIGH_VALUE_AT_RISK
from tests.console.support import FakeServices, signed_in
from tests.support.problems import problem_reply


def _insights(customers: int = 384) -> dict:
    return {
        "tenant_id": "default",
        "as_of": "2011-12-09T12:50:00Z",
        "model_version": "v2",
        "previous_model_version": "v1",
        "previous_problem": None,
        "active_days": 90,
        "ltv_horizon_days": 365,
        "kpis": [
            {
                "name": "customers",
                "label": "Customers",
                "unit": "count",
                "value": customers,
                "previous": customers,
                "model_dependent": False,
            },
            {
                "name": "at_risk_customers",
                "label": "At risk",
                "unit": "count",
                "value": 120,
                "previous": 100,
                "model_dependent": True,
            },
            {
                "name": "revenue_at_risk",
                "label": "Revenue at risk",
                "unit": "currency",
                "value": 3399.85,
                "previous": 4100.0,
                "model_dependent": True,
            },
            {
                "name": "retention_rate",
                "label": "Retention rate",
                "unit": "share",
                "value": 0.6123,
                "previous": 0.6123,
                "model_dependent": False,
            },
        ],
        "segments": [
            {
                "segment": "Champions",
                "customers": 52,
                "revenue_share": 0.6,
                "mean_churn_probability": 0.19,
                "revenue_at_risk": 2046.06,
                "predicted_ltv": 30994.1,
                "action": "Reward them",
                "revenue_at_risk_share": 0.6,
            },
            {
                "segment": "Lost <script>",
                "customers": 46,
                "revenue_share": 0.0004,
                "mean_churn_probability": 0.99,
                "revenue_at_risk": 0.41,
                "predicted_ltv": 0.44,
                "action": "Low priority",
                "revenue_at_risk_share": 0.0001,
            },
        ],
        "narrative": [
            {"text": "Champions hold 60% of revenue.", "numbers": []},
            {"text": "120 customers are at high risk, up from 100.", "numbers": []},
            {"text": "Retention was 61.2%.", "numbers": []},
        ],
    }


def _customers() -> dict:
    row = {
        "customer_id": "=HYPERLINK(1)",
        "churn_probability": 0.91,
        "risk_band": "high",
        "predicted_ltv": 1500.0,
        "ltv_low": 900.0,
        "ltv_high": 2100.0,
        "value_tier": "VIP",
        "segment": "Champions",
        "action": "Reward them",
        "revenue_at_risk": 1365.0,
        "features_as_of": "2011-12-09T00:00:00Z",
    }
    return {"customers": [row], "total": 1, "next_cursor": None, "model_version": "v2"}


def test_the_kpis_narrative_and_top_customers_are_the_apis() -> None:
    fake = FakeServices(
        routes={
            ("scoring", "GET", "/v1/insights"): _insights(),
            ("scoring", "GET", "/v1/customers"): _customers(),
        }
    )
    page = signed_in(fake).get("/")
    assert page.status_code == 200
    cards = dict(re.findall(r'data-kpi="(\w+)" data-value="([^"]+)"', page.text))
    assert cards == {
        "customers": "384",
        "at_risk_customers": "120",
        "revenue_at_risk": "3399.85",
        "retention_rate": "0.6123",
    }
    assert "61.2%" in page.text and "3,400" in page.text
    # A change is shown only where the model enters the number.
    assert "+20 since the previous model" in page.text
    assert "−700 since the previous model" in page.text
    assert page.text.count("since the previous model") == 2
    for sentence in _insights()["narrative"]:
        assert sentence["text"] in page.text
    # Data from the services is escaped, in HTML and in the chart's JSON alike.
    assert "<script>" not in page.text.replace("<script src=", "").replace(
        '<script type="application/json"', ""
    )
    assert "Lost &lt;script&gt;" in page.text
    assert 'href="/customers/%3DHYPERLINK%281%29"' in page.text
    # The top list and the link to all of it are the demo's and README's list (medium or high
    # risk among High/VIP value), from one definition.
    (listing,) = fake.requests_to("scoring", "/v1/customers")
    assert dict(listing.url.params) == {
        "risk_band": "medium,high",
        "value_tier": "High,VIP",
        "sort": "revenue_at_risk",
        "limit": "10",
    }
    assert dict(listing.url.params) == {k: str(v) for k, v in HIGH_VALUE_AT_RISK.items()}
    (link,) = re.findall(r'<a id="all-at-risk" href="([^"]+)"', page.text)
    assert link.replace("&amp;", "&") == (
        "/customers?risk_band=medium&risk_band=high&value_tier=High&value_tier=VIP"
    )


def test_each_kpi_says_what_it_counts_and_risk_bands_read_as_words() -> None:
    fake = FakeServices(
        routes={
            ("scoring", "GET", "/v1/insights"): _insights(),
            ("scoring", "GET", "/v1/customers"): _customers(),
        }
    )
    page = signed_in(fake).get("/")
    notes = dict(
        re.findall(r'data-kpi="(\w+)".*?<p class="note">([^<]+)</p>', page.text, flags=re.DOTALL)
    )
    assert notes == {
        "customers": "with a score from the model",
        "at_risk_customers": "at high risk of churning",
        "revenue_at_risk": "churn probability × predicted value, summed",
        "retention_rate": "of those active the 90 days before, ordered again",
    }
    # The horizon is the model's, not a fixed year.
    horizon = {**_insights(), "ltv_horizon_days": 90}
    horizon["kpis"] = [
        *horizon["kpis"],
        {
            "name": "predicted_revenue",
            "label": "Predicted revenue",
            "unit": "currency",
            "value": 55481.0,
            "previous": None,
            "model_dependent": True,
        },
    ]
    fake.routes[("scoring", "GET", "/v1/insights")] = horizon
    assert "expected over the next 90 days" in signed_in(fake).get("/").text
    # The band is a word for people, not the API's enum value.
    assert '<span class="band band-high">High</span>' in page.text
    assert "money in the currency of your orders" in page.text


def test_the_link_to_all_high_value_customers_at_risk_lists_the_same_filter() -> None:
    segments = {"model_version": "v2", "customers": 384, "segments": []}
    fake = FakeServices(
        routes={
            ("scoring", "GET", "/v1/segments"): segments,
            ("scoring", "GET", "/v1/customers"): _customers(),
        }
    )
    page = signed_in(fake).get("/customers?" + at_risk_list_query())
    assert page.status_code == 200
    (listing,) = fake.requests_to("scoring", "/v1/customers")
    asked = dict(listing.url.params)
    assert {k: asked[k] for k in ("risk_band", "value_tier", "sort")} == {
        k: HIGH_VALUE_AT_RISK[k] for k in ("risk_band", "value_tier", "sort")
    }


def test_a_tenant_without_customers_is_asked_for_its_first_export() -> None:
    fake = FakeServices(
        routes={
            ("scoring", "GET", "/v1/insights"): _insights(customers=0),
            ("scoring", "GET", "/v1/customers"): {**_customers(), "customers": [], "total": 0},
        }
    )
    page = signed_in(fake).get("/")
    assert page.status_code == 200 and "Upload your first export" in page.text


def test_a_tenant_without_a_model_is_asked_for_its_first_export() -> None:
    no_model = problem_reply(503, None, "no champion model for this tenant yet: train one")
    fake = FakeServices(
        routes={
            ("scoring", "GET", "/v1/insights"): no_model,
            ("scoring", "GET", "/v1/customers"): no_model,
        }
    )
    page = signed_in(fake).get("/")
    assert page.status_code == 200 and "Upload your first export" in page.text
