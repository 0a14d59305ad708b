"""Bands, tiers, PSI, list paging and score-change detection: the rules without I/O."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from retention_bundle.drift_reference import reference_distributions
from retention_scoring.drift import feature_psi, psi
from retention_scoring.lists import (
    CursorError,
    Filters,
    ListQuery,
    SortKey,
    decode_cursor,
    encode_cursor,
    list_page,
    range_problems,
)
from retention_scoring.score_events import changed_fields
from retention_scoring.scoring import tier_cutoffs, value_tiers
from retention_shared.score_summaries import risk_bands


def test_risk_band_cut_offs() -> None:
    bands = risk_bands(np.array([0.0, 0.2999, 0.30, 0.5999, 0.60, 1.0]))
    assert bands.tolist() == ["low", "low", "medium", "medium", "high", "high"]


def test_value_tiers_by_quantiles() -> None:
    ltv = np.arange(100, dtype=float)
    cutoffs = tier_cutoffs(ltv)
    tiers = value_tiers(ltv, cutoffs).tolist()
    assert tiers.count("VIP") == 5 and tiers.count("High") == 15
    assert tiers.count("Medium") == 30 and tiers.count("Low") == 50
    assert tiers[-1] == "VIP" and tiers[0] == "Low"


def test_psi_is_zero_for_the_reference_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference_values = pl.DataFrame({"x": rng.normal(size=5000)})
    reference = reference_distributions(reference_values, ["x"])
    assert feature_psi(reference, reference_values)["x"] == pytest.approx(0.0, abs=1e-12)
    shifted = pl.DataFrame({"x": rng.normal(loc=1.0, size=5000)})
    assert feature_psi(reference, shifted)["x"] > 0.2
    same = pl.DataFrame({"x": rng.normal(size=5000)})
    assert feature_psi(reference, same)["x"] < 0.05
    assert psi([0.5, 0.5], [1.0, 0.0]) > 1  # an emptied bin is a big shift, not infinity


def test_changes_name_what_moved() -> None:
    assert changed_fields(None, ("high", "VIP", "At risk")) == [
        "risk_band",
        "value_tier",
        "segment",
    ]
    assert changed_fields(("high", "VIP", "At risk"), ("high", "VIP", "At risk")) == []
    assert changed_fields(("low", "VIP", "At risk"), ("high", "VIP", "Lost")) == [
        "risk_band",
        "segment",
    ]


def _scores(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    p = np.round(rng.random(n), 1)  # many ties: the customer id must break them
    ltv = rng.random(n) * 100
    return pl.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n)],
            "as_of": pl.Series([0] * n).cast(pl.Datetime("us", "UTC")),
            "churn_probability": p,
            "risk_band": risk_bands(p).tolist(),
            "predicted_ltv": ltv,
            "ltv_low": ltv / 2,
            "ltv_high": ltv * 2,
            "value_tier": value_tiers(ltv, tier_cutoffs(ltv)).tolist(),
            "segment": ["A", "B"] * (n // 2),
            "action": ["a", "b"] * (n // 2),
            "revenue_at_risk": p * ltv,
            "expected_orders": np.round(rng.random(n) * 3, 1),
            "next_order_by": pl.Series(
                [
                    None if i % 4 == 0 else date(2012, 1, 1) + timedelta(days=i % 30)
                    for i in range(n)
                ],
                dtype=pl.Date,
            ),
        }
    )


@pytest.mark.parametrize("sort", list(SortKey))
def test_cursor_pages_cover_the_list_once_in_order(sort: SortKey) -> None:
    scores = _scores(100)
    filters = Filters(segments=("A",))
    pages, after = [], None
    while True:
        query = ListQuery(filters, sort=sort, limit=7, after=after)
        page = list_page(scores, query)
        pages.extend(page.rows["customer_id"].to_list())
        if page.next_after is None:
            break
        cursor = encode_cursor(page.next_after, query)
        after = decode_cursor(cursor, filters, sort)
    matching = scores.filter(pl.col("segment") == "A")
    if sort is SortKey.CUSTOMER_ID:
        want = matching.sort("customer_id")
    else:
        want = matching.sort([sort.value, "customer_id"], descending=[True, False])
    assert pages == want["customer_id"].to_list()


def test_a_page_is_stable_when_other_scores_change() -> None:
    scores = _scores(40)
    query = ListQuery(Filters(), limit=10)
    first = list_page(scores, query)
    # A customer already shown drops to the bottom; the next page neither repeats nor skips.
    moved = first.rows["customer_id"][0]
    changed = scores.with_columns(
        revenue_at_risk=pl.when(pl.col("customer_id") == moved)
        .then(-1.0)
        .otherwise(pl.col("revenue_at_risk"))
    )
    second = list_page(changed, ListQuery(Filters(), limit=10, after=first.next_after))
    unchanged = scores.sort(["revenue_at_risk", "customer_id"], descending=[True, False])
    assert second.rows["customer_id"].to_list() == unchanged["customer_id"][10:20].to_list()


def test_cursors_are_tied_to_their_query() -> None:
    query = ListQuery(Filters(segments=("A",)), limit=5)
    cursor = encode_cursor((0.5, "c001"), query)
    assert decode_cursor(cursor, Filters(segments=("A",)), SortKey.REVENUE_AT_RISK) == (0.5, "c001")
    with pytest.raises(CursorError):
        decode_cursor(cursor, Filters(segments=("B",)), SortKey.REVENUE_AT_RISK)
    with pytest.raises(CursorError):
        decode_cursor("not-a-cursor", Filters(), SortKey.REVENUE_AT_RISK)


def test_ranges_bound_ltv_and_churn_with_both_ends_included() -> None:
    scores = _scores(100)
    filters = Filters(min_churn=0.3, max_churn=0.6, min_ltv=20.0, max_ltv=80.0)
    got = list_page(scores, ListQuery(filters, sort=SortKey.CUSTOMER_ID, limit=1000))
    want = scores.filter(
        pl.col("churn_probability").is_between(0.3, 0.6, closed="both")
        & pl.col("predicted_ltv").is_between(20.0, 80.0, closed="both")
    )
    assert got.rows["customer_id"].to_list() == want["customer_id"].to_list()
    assert got.total == want.height > 0
    # The probabilities are rounded to tenths, so customers sit exactly on both bounds.
    assert {0.3, 0.6} <= set(got.rows["churn_probability"].to_list())
    # A single point is a range too.
    exact = list_page(scores, ListQuery(Filters(min_churn=0.5, max_churn=0.5), limit=1000))
    assert set(exact.rows["churn_probability"].to_list()) == {0.5}


def test_expected_orders_and_next_order_dates_bound_the_list_with_both_ends_included() -> None:
    scores = _scores(100)
    start, end = date(2012, 1, 5), date(2012, 1, 12)
    filters = Filters(min_orders=1.0, max_orders=2.0, next_order_from=start, next_order_to=end)
    got = list_page(scores, ListQuery(filters, sort=SortKey.EXPECTED_ORDERS, limit=1000))
    want = scores.filter(
        pl.col("expected_orders").is_between(1.0, 2.0, closed="both")
        & pl.col("next_order_by").is_between(start, end, closed="both")
    ).sort(["expected_orders", "customer_id"], descending=[True, False])
    assert got.rows["customer_id"].to_list() == want["customer_id"].to_list()
    assert got.total == want.height > 0
    assert {start, end} <= set(got.rows["next_order_by"].to_list())
    # A customer without a date (below 50% within a year) matches no date bound.
    assert got.rows["next_order_by"].null_count() == 0
    undated = scores["next_order_by"].null_count()
    assert undated > 0
    assert list_page(scores, ListQuery(Filters(), limit=1000)).total == scores.height
    assert (
        list_page(scores, ListQuery(Filters(next_order_to=date(2100, 1, 1)), limit=1000)).total
        == scores.height - undated
    )
    assert [f for f, _ in range_problems(Filters(min_orders=3, max_orders=1))] == ["max_orders"]
    assert [f for f, _ in range_problems(Filters(next_order_from=end, next_order_to=start))] == [
        "next_order_to"
    ]


def test_a_cursor_issued_before_the_order_filters_still_continues_its_list() -> None:
    """Lists without the new bounds keep their fingerprint, so cursors out in CRM tools work."""
    filters = Filters(segments=("B", "A"), max_churn=0.5)
    before = json.dumps(
        [["A", "B"], None, None, None, None, None, 0.5, SortKey.PREDICTED_LTV.value]
    )
    assert (
        filters.fingerprint(SortKey.PREDICTED_LTV)
        == hashlib.sha256(before.encode()).hexdigest()[:12]
    )
    assert Filters(min_orders=1).fingerprint(SortKey.PREDICTED_LTV) != Filters().fingerprint(
        SortKey.PREDICTED_LTV
    )


def test_a_range_with_min_above_max_names_its_max() -> None:
    assert range_problems(Filters(min_churn=0.2, max_churn=0.2, min_ltv=5, max_ltv=5)) == []
    assert range_problems(Filters(min_churn=0.7, max_churn=0.3)) == [
        ("max_churn", "0.3 is below min_churn 0.7")
    ]
    assert [f for f, _ in range_problems(Filters(min_ltv=100, max_ltv=10, max_churn=0))] == [
        "max_ltv"
    ]


def test_cursors_are_tied_to_their_ranges() -> None:
    query = ListQuery(Filters(max_churn=0.5), limit=5)
    cursor = encode_cursor((0.5, "c001"), query)
    assert decode_cursor(cursor, Filters(max_churn=0.5), SortKey.REVENUE_AT_RISK) == (0.5, "c001")
    for other in (Filters(), Filters(max_churn=0.6), Filters(min_churn=0.5), Filters(max_ltv=0.5)):
        with pytest.raises(CursorError):
            decode_cursor(cursor, other, SortKey.REVENUE_AT_RISK)


def test_several_segments_match_any_of_them_and_their_cursor_keeps_the_set() -> None:
    scores = _scores(90).with_columns(segment=pl.Series(["A", "B", "C"] * 30))
    filters = Filters(segments=("C", "A"))
    pages, after = [], None
    while True:
        query = ListQuery(filters, limit=7, after=after)
        page = list_page(scores, query)
        pages.extend(page.rows["customer_id"].to_list())
        if page.next_after is None:
            break
        # The same set in another order is the same list: its cursor carries on.
        cursor = encode_cursor(page.next_after, query)
        after = decode_cursor(cursor, Filters(segments=("A", "C")), SortKey.REVENUE_AT_RISK)
    want = scores.filter(pl.col("segment").is_in(["A", "C"])).sort(
        ["revenue_at_risk", "customer_id"], descending=[True, False]
    )
    assert pages == want["customer_id"].to_list() and len(pages) == 60
    cursor = encode_cursor((0.5, "c001"), ListQuery(filters, limit=7))
    for other in (Filters(), Filters(segments=("A",)), Filters(segments=("A", "B", "C"))):
        with pytest.raises(CursorError):
            decode_cursor(cursor, other, SortKey.REVENUE_AT_RISK)
