"""The planner and the list cursors under extreme or forged values (no I/O)."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from retention_scoring.api.campaigns import CSV_COLUMNS, contacts_csv
from retention_scoring.api.customers import csv_filename, list_csv
from retention_scoring.lists import CursorError, Filters, SortKey, decode_cursor
from retention_shared.campaigns import CampaignRequest, plan_campaign


def test_a_budget_beyond_every_candidate_plans_each_worthwhile_one_once() -> None:
    p = np.array([0.9, 0.5, 0.1, 0.8])
    ltv = np.array([100.0, 40.0, 10.0, 0.0])
    request = CampaignRequest(budget=1e308, cost_per_contact=1e-6, save_rate=1.0)
    plan = plan_campaign(p, ltv, request)
    assert plan.selected.tolist() == [0, 1, 2]  # the zero-LTV customer would be a loss
    assert plan.expected.cost == pytest.approx(3e-6)
    assert plan.expected.roi is not None and np.isfinite(plan.expected.roi)


def test_a_contact_list_keeps_formulas_as_text() -> None:
    contacts = pl.DataFrame(
        {
            "customer_id": ["=cmd|' /C calc'!A0", "c2"],
            "churn_probability": [0.9, 0.5],
            "predicted_ltv": [100.0, 40.0],
            "risk_band": ["high", "medium"],
            "value_tier": ["VIP", "High"],
            "segment": ["Lost", "@SUM(A1)"],
            "expected_net_value": [-1.5, 2.0],
        }
    ).select(CSV_COLUMNS)
    lines = contacts_csv(contacts).splitlines()
    assert lines[1].startswith("'=cmd|")
    assert lines[2].endswith(",'@SUM(A1),2.0")
    assert ",-1.5" in lines[1]  # numbers stay numbers


FORMULA_STARTS = ("=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+2", "\r=1+2")


def test_a_customer_list_csv_keeps_every_formula_start_as_text() -> None:
    # Ids reaching scoring are printable (no tab or CR), segments and actions are the model's:
    # the list's CSV is still safe on its own for every start a spreadsheet would evaluate.
    n = len(FORMULA_STARTS)
    page = pl.DataFrame(
        {
            "customer_id": list(FORMULA_STARTS),
            "churn_probability": [0.9] * n,
            "risk_band": ["high"] * n,
            "predicted_ltv": [-0.0] + [10.5] * (n - 1),
            "ltv_low": [1.0] * n,
            "ltv_high": [20.0] * n,
            "value_tier": ["VIP"] * n,
            "segment": list(reversed(FORMULA_STARTS)),
            "action": ['=HYPERLINK("http://x","y")'] * n,
            "revenue_at_risk": [-1.5] * n,
            "expected_orders": [0.5] * n,
            "next_order_by": [date(2012, 1, 2)] + [None] * (n - 1),
            "features_as_of": [datetime(2011, 12, 9, tzinfo=UTC)] * n,
        }
    )
    rows = list(csv.DictReader(io.StringIO(list_csv(page), newline="")))
    assert [row["customer_id"] for row in rows] == ["'" + start for start in FORMULA_STARTS]
    assert [row["segment"] for row in rows] == ["'" + s for s in reversed(FORMULA_STARTS)]
    assert all(row["action"].startswith("'=HYPERLINK") for row in rows)
    assert rows[0]["revenue_at_risk"] == "-1.5" and rows[0]["predicted_ltv"] == "-0.0"
    assert rows[0]["features_as_of"] == "2011-12-09T00:00:00+00:00"
    assert rows[0]["next_order_by"] == "2012-01-02" and rows[1]["next_order_by"] == ""


def test_a_list_csv_file_name_keeps_only_safe_characters_of_the_tenant() -> None:
    day = date(2024, 5, 1)
    assert csv_filename("default", day) == "customers-default-2024-05-01.csv"
    assert csv_filename('a"b/../c\\d é', day) == "customers-a_b_.._c_d__-2024-05-01.csv"


def _forged(value: object, sort: SortKey = SortKey.REVENUE_AT_RISK) -> str:
    # What encode_cursor writes, with a value of the client's choosing.
    fingerprint = Filters().fingerprint(sort)
    text = json.dumps({"v": value, "c": "c001", "q": fingerprint})
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("value", "sort"),
    [
        ("abc", SortKey.REVENUE_AT_RISK),
        (None, SortKey.CHURN_PROBABILITY),
        (True, SortKey.PREDICTED_LTV),
        (10**400, SortKey.REVENUE_AT_RISK),
        (float("inf"), SortKey.REVENUE_AT_RISK),
        ([1], SortKey.REVENUE_AT_RISK),
        (1.5, SortKey.CUSTOMER_ID),
    ],
)
def test_a_forged_sort_value_is_not_a_cursor(value: object, sort: SortKey) -> None:
    with pytest.raises(CursorError):
        decode_cursor(_forged(value, sort), Filters(), sort)


def test_a_sort_value_of_the_right_kind_is_accepted() -> None:
    assert decode_cursor(_forged(3), Filters(), SortKey.REVENUE_AT_RISK) == (3.0, "c001")
    assert decode_cursor(_forged("c000", SortKey.CUSTOMER_ID), Filters(), SortKey.CUSTOMER_ID) == (
        "c000",
        "c001",
    )
