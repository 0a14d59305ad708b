"""The planner and the list cursors under extreme or forged values (no I/O)."""

from __future__ import annotations

import base64
import json

import numpy as np
import polars as pl
import pytest

from retention_scoring.api.campaigns import CSV_COLUMNS, contacts_csv
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
