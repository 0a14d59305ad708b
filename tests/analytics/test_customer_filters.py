"""`GET /v1/customers` filtered by segments, churn-probability and LTV ranges on the running
stack, as JSON and as CSV (`format=csv` or `Accept: text/csv`).

The expected lists are the whole list (one page of every scored customer) filtered here in
Python: a range keeps a customer exactly on its bounds, the order and the totals are the
unfiltered list's. CSV pages joined without their repeated header are the one-request CSV,
which is what the console's download relies on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from retention_cli.demo_report import AT_RISK_QUERY
from retention_cli.stack import Stack
from tests.support.problems import first_problem
from tests.support.stack import READ_KEY, auth, url

pytestmark = pytest.mark.slow

ALL = 10_000


def listing(stack: Stack, key: str = READ_KEY, **params: object) -> httpx.Response:
    return httpx.get(f"{url(stack, 'scoring')}/v1/customers", params=params, headers=auth(key))


def csv_listing(stack: Stack, **params: object) -> httpx.Response:
    headers = auth(READ_KEY) | {"Accept": "text/csv"}
    return httpx.get(f"{url(stack, 'scoring')}/v1/customers", params=params, headers=headers)


@pytest.fixture(scope="module")
def everyone(loaded_stack: Stack) -> list[dict]:
    body = listing(loaded_stack, limit=ALL).json()
    assert body["next_cursor"] is None and body["total"] == len(body["customers"]) > 300
    return body["customers"]


def _within(row: dict, **bounds: float | None) -> bool:
    checks = (
        ("churn_probability", bounds.get("min_churn"), bounds.get("max_churn")),
        ("predicted_ltv", bounds.get("min_ltv"), bounds.get("max_ltv")),
    )
    return all(
        (low is None or row[column] >= low) and (high is None or row[column] <= high)
        for column, low, high in checks
    )


def _ranges(everyone: list[dict]) -> list[dict]:
    churn = sorted(row["churn_probability"] for row in everyone)
    ltv = sorted(row["predicted_ltv"] for row in everyone)
    quarter, half, three = len(churn) // 4, len(churn) // 2, 3 * len(churn) // 4
    return [
        {"min_churn": 0.6},
        {"max_churn": 0.3},
        {"min_churn": 0.3, "max_churn": 0.6},
        # Bounds taken from the customers themselves: a customer on a bound is in.
        {"min_churn": churn[quarter], "max_churn": churn[three]},
        {"min_churn": churn[half], "max_churn": churn[half]},
        {"max_ltv": ltv[half]},
        {"min_ltv": ltv[quarter], "max_ltv": ltv[three]},
        {"min_churn": churn[quarter], "max_churn": 1, "min_ltv": 0, "max_ltv": ltv[three]},
    ]


def test_ranges_keep_exactly_the_customers_within_both_bounds_in_the_lists_order(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    for bounds in _ranges(everyone):
        body = listing(loaded_stack, limit=ALL, **bounds).json()
        want = [row for row in everyone if _within(row, **bounds)]
        assert want, bounds
        assert body["customers"] == want, bounds
        assert body["total"] == len(want)


def test_ranges_combine_with_the_segment_bands_and_tiers(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    segment = everyone[0]["segment"]
    bounds = {"min_churn": 0.2, "max_churn": 0.9, "min_ltv": 10.0}
    body = listing(
        loaded_stack,
        limit=ALL,
        segment=segment,
        risk_band="high,medium",
        value_tier=["High", "VIP"],
        **bounds,
    ).json()
    want = [
        row
        for row in everyone
        if row["segment"] == segment
        and row["risk_band"] in ("high", "medium")
        and row["value_tier"] in ("High", "VIP")
        and _within(row, **bounds)
    ]
    assert want and body["customers"] == want


def test_pages_of_a_range_cover_it_once_and_a_cursor_belongs_to_its_range(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    bounds = {"min_churn": 0.1, "max_ltv": 5000.0}
    want = [row["customer_id"] for row in everyone if _within(row, **bounds)]
    seen, cursor = [], None
    while True:
        body = listing(loaded_stack, limit=9, **bounds, **({"cursor": cursor} if cursor else {}))
        assert body.status_code == 200, body.text
        seen += [row["customer_id"] for row in body.json()["customers"]]
        cursor = body.json()["next_cursor"]
        if cursor is None:
            break
        last = cursor
    assert seen == want
    moved = listing(loaded_stack, limit=9, min_churn=0.1, max_ltv=5001.0, cursor=last)
    assert moved.status_code == 422
    assert first_problem(moved)[0] == "cursor"


def test_csv_pages_joined_are_the_one_request_csv_and_the_json(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    bounds = {"min_churn": 0.05, "max_churn": 0.95, "sort": "churn_probability"}
    whole = csv_listing(loaded_stack, limit=ALL, **bounds)
    assert whole.status_code == 200 and "x-next-cursor" not in whole.headers
    joined, cursor, pages = b"", None, 0
    while True:
        page = csv_listing(
            loaded_stack, limit=40, **bounds, **({"cursor": cursor} if cursor else {})
        )
        joined += page.content if not joined else page.content.split(b"\n", 1)[1]
        pages += 1
        cursor = page.headers.get("x-next-cursor")
        if cursor is None:
            break
    assert pages > 2 and joined == whole.content
    rows = list(csv.DictReader(io.StringIO(whole.text)))
    json_rows = listing(loaded_stack, limit=ALL, **bounds).json()["customers"]
    assert [r["customer_id"] for r in rows] == [r["customer_id"] for r in json_rows]
    assert whole.headers["x-total-count"] == str(len(json_rows))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_churn": "1.5"}, "query.min_churn"),
        ({"max_churn": "-0.1"}, "query.max_churn"),
        ({"min_churn": "nan"}, "query.min_churn"),
        ({"max_churn": "inf"}, "query.max_churn"),
        ({"max_ltv": "-1"}, "query.max_ltv"),
        ({"max_ltv": "1e309"}, "query.max_ltv"),
        ({"max_ltv": "lots"}, "query.max_ltv"),
        ({"min_churn": "0.7", "max_churn": "0.3"}, "query.max_churn"),
        ({"min_ltv": "100", "max_ltv": "99.5"}, "query.max_ltv"),
    ],
)
def test_a_bad_range_is_a_422_naming_the_field(
    loaded_stack: Stack, params: dict, field: str
) -> None:
    response = listing(loaded_stack, **params)
    assert response.status_code == 422, response.text
    assert first_problem(response)[0] == field


def test_a_campaign_plans_over_the_same_customers_the_list_filters(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    bounds = {"min_churn": 0.4, "max_churn": 0.9, "max_ltv": 3000.0}
    body = {"budget": 100, "cost_per_contact": 1, "save_rate": 0.2, "filters": bounds}
    plan = httpx.post(
        f"{url(loaded_stack, 'scoring')}/v1/campaigns/plan", json=body, headers=auth(READ_KEY)
    )
    assert plan.status_code == 200, plan.text
    assert plan.json()["candidates"] == len([r for r in everyone if _within(r, **bounds)])
    backwards = body | {"filters": {"min_churn": 0.9, "max_churn": 0.4}}
    refused = httpx.post(
        f"{url(loaded_stack, 'scoring')}/v1/campaigns/plan", json=backwards, headers=auth(READ_KEY)
    )
    assert refused.status_code == 422
    assert first_problem(refused)[0] == "filters.max_churn"


def _in_order(everyone: list[dict], keep: Callable[[dict], bool]) -> list[dict]:
    return [row for row in everyone if keep(row)]


def test_several_segments_match_any_and_page_with_a_cursor_of_the_set(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    present = list(dict.fromkeys(row["segment"] for row in everyone))
    assert len(present) >= 3
    two = present[:2]
    want = _in_order(everyone, lambda row: row["segment"] in two)
    # A comma list, the parameter repeated, and the names in the other order: one list.
    for segment in (",".join(two), two, ",".join(reversed(two))):
        body = listing(loaded_stack, limit=ALL, segment=segment).json()
        assert body["customers"] == want and body["total"] == len(want), segment
    seen, cursor, turn = [], None, 0
    while True:
        # Pages alternate between the spellings of the same set; the cursor carries on.
        segment = ",".join(two) if turn % 2 == 0 else [two[1], two[0]]
        page = listing(
            loaded_stack, limit=25, segment=segment, **({"cursor": cursor} if cursor else {})
        )
        assert page.status_code == 200, page.text
        seen += page.json()["customers"]
        cursor, turn = page.json()["next_cursor"], turn + 1
        if cursor is None:
            break
        last = cursor
    assert turn > 2 and seen == want
    # The cursor encodes the set: one segment fewer or more is another list.
    for other in (two[0], ",".join(present[:3])):
        moved = listing(loaded_stack, limit=25, segment=other, cursor=last)
        assert moved.status_code == 422, moved.text
        assert first_problem(moved)[0] == "cursor"
    unknown = listing(loaded_stack, segment=f"{two[0]},No such segment")
    assert unknown.status_code == 422, unknown.text
    field, problem = first_problem(unknown)
    assert field == "query.segment" and "'No such segment'" in problem


def test_format_csv_is_an_attachment_named_for_the_tenant_and_day(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    params = {"limit": ALL, "risk_band": "high", "sort": "customer_id"}
    before = datetime.now(UTC).date()
    by_format = listing(loaded_stack, format="csv", **params)
    days = {before, datetime.now(UTC).date()}  # the UTC day of the answer (midnight may pass)
    assert by_format.status_code == 200, by_format.text
    assert by_format.headers["content-type"].startswith("text/csv")
    disposition = by_format.headers["content-disposition"]
    assert disposition in {f'attachment; filename="customers-default-{d}.csv"' for d in days}
    by_accept = csv_listing(loaded_stack, **params)
    assert by_accept.content == by_format.content
    assert by_accept.headers["content-disposition"] == disposition
    rows = list(csv.DictReader(io.StringIO(by_format.text)))
    want = sorted(r["customer_id"] for r in everyone if r["risk_band"] == "high")
    assert [row["customer_id"] for row in rows] == want
    assert by_format.headers["x-total-count"] == str(len(want))
    # format=json wins over an Accept asking for CSV.
    as_json = httpx.get(
        f"{url(loaded_stack, 'scoring')}/v1/customers",
        params=params | {"format": "json"},
        headers=auth(READ_KEY) | {"Accept": "text/csv"},
    )
    assert as_json.headers["content-type"].startswith("application/json")
    assert "content-disposition" not in as_json.headers
    assert [r["customer_id"] for r in as_json.json()["customers"]] == want
    refused = listing(loaded_stack, format="xlsx")
    assert refused.status_code == 422 and first_problem(refused)[0] == "query.format"


def test_the_readme_and_demo_high_value_at_risk_query_is_the_filtered_list(
    loaded_stack: Stack, everyone: list[dict]
) -> None:
    body = listing(loaded_stack, **AT_RISK_QUERY).json()
    want = _in_order(
        everyone,
        lambda r: r["risk_band"] in ("medium", "high") and r["value_tier"] in ("High", "VIP"),
    )
    assert body["total"] == len(want) > 0
    assert body["customers"] == want[: AT_RISK_QUERY["limit"]]
    values = [row["revenue_at_risk"] for row in body["customers"]]
    assert values == sorted(values, reverse=True)
    # What the filter removes is there to remove: at-risk customers of lower predicted value,
    # and high-value customers of low risk.
    assert any(r["risk_band"] == "high" and r["value_tier"] in ("Low", "Medium") for r in everyone)
    assert any(r["risk_band"] == "low" and r["value_tier"] in ("High", "VIP") for r in everyone)
