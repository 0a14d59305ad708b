"""The cohorts page: what it asks the trainer, the heatmap and its exact table, the CSV through
the console."""

from __future__ import annotations

import html
import json
import re

import httpx

from tests.console.support import FakeServices, console, signed_in
from tests.support.problems import problem_reply

ROUTE = ("trainer", "GET", "/v1/cohorts")
CSV_ROUTE = ("trainer", "GET", "/v1/cohorts.csv")


def _matrix(metric: str = "customers", period: str = "month") -> dict:
    values = {
        "customers": [[1.0, 0.33871, 0.258], [1.0, 0.0869565], [1.0]],
        "revenue": [[30866.75, 11667.61, -12.5], [5000.0, 0.0], [42.0]],
        "orders": [[80, 31, 22], [25, 2], [1]],
    }[metric]
    labels = (
        ["2010-12", "2011-01", "2011-02"]
        if period == "month"
        else ["2010-Q4", "2011-Q1", "2011-Q2"]
    )
    return {
        "tenant_id": "default",
        "period": period,
        "metric": metric,
        "as_of": "2011-12-09T12:50:00Z",
        "cohorts": [
            {"cohort": label, "start": "2010-12-01", "size": size, "values": row}
            for label, size, row in zip(labels, (62, 23, 1_150), values, strict=True)
        ],
        "max_age": 2,
    }


def _answer(request: httpx.Request) -> httpx.Response:
    params = request.url.params
    return httpx.Response(
        200, json=_matrix(params.get("metric", "customers"), params.get("period", "month"))
    )


def _fake(answer: object = _answer) -> FakeServices:
    return FakeServices(routes={ROUTE: answer})


def _heatmap(page: str) -> dict:
    found = re.search(
        r'<script type="application/json" id="cohort-heatmap-option">(.*?)</script>', page, re.S
    )
    assert found
    return json.loads(found.group(1))


def _table(page: str) -> list[list[str]]:
    body = re.search(r'<table class="cohorts">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [
        [html.unescape(cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
        for row in rows
    ]


def test_the_page_asks_the_trainer_for_monthly_customer_shares_by_default() -> None:
    fake = _fake()
    page = signed_in(fake).get("/cohorts")
    assert page.status_code == 200, page.text
    (asked,) = fake.requests_to("trainer", "/v1/cohorts")
    assert dict(asked.url.params) == {"metric": "customers", "period": "month"}
    assert asked.headers["authorization"] == "Bearer good-key"
    assert '<option value="customers" selected>' in page.text
    assert '<option value="month" selected>' in page.text
    assert '<label for="cohort-metric">' in page.text and '<label for="cohort-period">' in page.text


def test_the_table_holds_the_apis_values_and_leaves_unreached_ages_blank() -> None:
    page = signed_in(_fake()).get("/cohorts").text
    assert _table(page) == [
        ["2010-12", "62", "100.0%", "33.9%", "25.8%"],
        ["2011-01", "23", "100.0%", "8.7%", ""],
        ["2011-02", "1,150", "100.0%", "", ""],
    ]


def test_the_heatmap_has_a_cell_per_value_with_its_exact_value_on_hover() -> None:
    page = signed_in(_fake()).get("/cohorts").text
    option = _heatmap(page)["baseOption"]
    assert option["yAxis"]["data"] == ["2010-12", "2011-01", "2011-02"]
    assert option["xAxis"]["data"] == ["0", "1", "2"]
    (series,) = option["series"]
    cells = {tuple(item["value"][:2]): item for item in series["data"]}
    assert len(cells) == 6 and re.search(r'id="cohort-heatmap"[^>]*data-marks="6"', page)
    assert cells[(1, 0)]["value"][2] == 0.33871  # the API's number, unrounded
    assert cells[(1, 0)]["name"] == (
        "2010-12 cohort (62 customers), month 1: 33.9% of the cohort ordered"
    )
    assert cells[(1, 0)]["label"]["formatter"] == "34%"
    assert "Download CSV" in page
    assert 'href="/cohorts.csv?metric=customers&amp;period=month"' in page
    # A text alternative for the chart.
    assert 'role="img" aria-label="Heatmap of customers still ordering by cohort' in page


def test_the_switch_asks_for_revenue_by_quarter_and_htmx_gets_only_the_matrix() -> None:
    fake = _fake()
    client = signed_in(fake)
    fragment = client.get(
        "/cohorts",
        params={"metric": "revenue", "period": "quarter"},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="cohort-heatmap"' in fragment.text
    asked = fake.requests_to("trainer", "/v1/cohorts")[-1]
    assert dict(asked.url.params) == {"metric": "revenue", "period": "quarter"}
    assert _table(fragment.text)[0] == ["2010-Q4", "62", "30,866.75", "11,667.61", "-12.50"]
    assert "Quarters since first purchase" in fragment.text
    assert 'href="/cohorts.csv?metric=revenue&amp;period=quarter"' in fragment.text
    # Orders are counts.
    orders = client.get("/cohorts?metric=orders").text
    assert _table(orders)[0] == ["2010-12", "62", "80", "31", "22"]
    # Going back in history asks with htmx headers but needs the whole page.
    restored = client.get(
        "/cohorts?metric=revenue",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restored.text


def test_an_unknown_choice_falls_back_to_the_default_instead_of_failing() -> None:
    fake = _fake()
    page = signed_in(fake).get("/cohorts?metric=margin&period=week")
    assert page.status_code == 200
    asked = fake.requests_to("trainer", "/v1/cohorts")[-1]
    assert dict(asked.url.params) == {"metric": "customers", "period": "month"}


def test_a_tenant_without_orders_gets_the_upload_empty_state() -> None:
    empty = {**_matrix(), "cohorts": [], "max_age": 0, "as_of": None}
    page = signed_in(_fake(empty)).get("/cohorts")
    assert page.status_code == 200
    assert "Upload your first export" in page.text
    assert "no orders yet" in page.text.lower()


def test_a_stopped_trainer_is_a_readable_503() -> None:
    fake = _fake()
    fake.down.add("trainer")
    page = signed_in(fake).get("/cohorts")
    assert page.status_code == 503
    assert "The trainer is not answering" in page.text


def test_the_csv_is_the_trainers_bytes_fetched_with_the_users_key() -> None:
    body = b"cohort,cohort_size,age,period,value\n2010-12,62,0,2010-12,1.0\n"

    def csv(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=body,
            headers={
                "content-type": "text/csv; charset=utf-8",
                "content-disposition": 'attachment; filename="cohorts-quarter-revenue.csv"',
            },
        )

    fake = FakeServices(routes={CSV_ROUTE: csv})
    download = signed_in(fake).get(
        "/cohorts.csv", params={"metric": "revenue", "period": "quarter", "from": "2011-01-01"}
    )
    assert download.status_code == 200
    assert download.content == body
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == (
        'attachment; filename="cohorts-quarter-revenue.csv"'
    )
    (asked,) = fake.requests_to("trainer", "/v1/cohorts.csv")
    assert dict(asked.url.params) == {
        "metric": "revenue",
        "period": "quarter",
        "from": "2011-01-01",
    }
    assert asked.headers["authorization"] == "Bearer good-key"
    # The key never reaches the browser.
    assert "good-key" not in download.text and "good-key" not in str(download.headers)


def test_a_csv_the_trainer_refuses_is_a_problem_page() -> None:
    refused = problem_reply(422, "query.to", "must not be before from")
    page = signed_in(FakeServices(routes={CSV_ROUTE: refused})).get(
        "/cohorts.csv?from=2011-06-01&to=2011-01-01"
    )
    assert page.status_code == 422
    assert "must not be before from" in page.text


def test_the_csv_needs_a_session() -> None:
    response = console(_fake()).get("/cohorts.csv", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")
