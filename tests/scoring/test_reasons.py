import calendar
import math
import re
from datetime import UTC, datetime

import polars as pl
import pytest

from retention_bundle.bundle import read_bundle
from retention_bundle.predict import churn_contributions, score
from retention_scoring.reasons import baseline_probability, describe, no_usual_gap, top_reasons
from retention_scoring.scoring import explain
from retention_shared.features import compute_features
from retention_shared.features.registry import SEASON_BY_MONTH
from tests.support.uci_orders import TEST_DATA, load_orders

# A real-looking lapsed customer: 5 orders ~48 days apart, silent for 143 days.
LAPSED = {
    "recency_days": 143.2,
    "recency_gap_ratio": 3.0,
    "gap_mean_days": 47.7,
    "gap_std_days": 12.4,
    "days_past_expected_order": 95.5,
    "frequency": 5,
    "monetary": 1834.5,
    "avg_order_value": 366.9,
    "spend_trend": -1.0,
    "orders_90d": 0,
    "spend_365d": 912.0,
    "cancellation_rate": 0.125,
    "tenure_days": 335.0,
    "unique_products": 41,
    "active_months": 5,
    "avg_items_per_order": 212.0,
    "q4_spend_share": 0.6,
    "orders_season_last_year": 2,
    # September (month 9: the angle 2π·8.5/12).
    "season_sin": -0.9659258262890683,
    "season_cos": -0.25881904510252063,
}


@pytest.mark.parametrize(
    ("feature", "text"),
    [
        ("recency_days", "no order for 143 days, 3x longer than usual"),
        ("days_past_expected_order", "next order was due 96 days ago"),
        ("frequency", "5 orders so far"),
        ("monetary", "spent 1,834 in total"),
        ("spend_trend", "no spend in the last 90 days, after spending in the 90 before"),
        ("orders_90d", "0 orders in the last 90 days"),
        ("spend_365d", "spent 912 in the last 365 days"),
        ("cancellation_rate", "12% of order value cancelled"),
        ("tenure_days", "customer for 335 days"),
        ("unique_products", "bought 41 different products"),
        ("gap_mean_days", "usually orders every 48 days"),
        ("q4_spend_share", "60% of spend in October-December"),
        ("orders_season_last_year", "2 orders in the same 90 days last year"),
        ("season_sin", "the time of year (September)"),
        ("season_cos", "the time of year (September)"),
    ],
)
def test_wording_of_a_lapsed_customer(feature: str, text: str) -> None:
    assert describe(feature, LAPSED) == text


def test_recency_is_put_against_the_usual_gap() -> None:
    regular = LAPSED | {"recency_days": 50.0, "gap_mean_days": 47.7}
    early = LAPSED | {"recency_days": 10.0}
    one_timer = LAPSED | {"recency_days": 1.0, "gap_mean_days": 0.0, "frequency": 1.0}
    assert (
        describe("recency_days", regular)
        == "last order 50 days ago, about as usual (every 48 days)"
    )
    assert (
        describe("recency_days", early)
        == "last order 10 days ago, sooner than usual (every 48 days)"
    )
    # A day's silence is not "no order for 1 day".
    assert describe("recency_days", one_timer) == "last order 1 day ago"
    assert describe("recency_days", one_timer | {"recency_days": 45.0}) == "no order for 45 days"
    assert describe("days_past_expected_order", one_timer) == "one order so far, 1 day ago"
    assert describe("recency_gap_ratio", one_timer) == "one order so far, 1 day ago"
    assert (
        describe("recency_days", LAPSED | {"recency_days": 100.0})
        == "no order for 100 days, 2.1x longer than usual"
    )


def test_trend_reads_as_a_percentage_change() -> None:
    # (g1 - g0) / (g1 + g0) = -1/3 means g1 = g0 / 2: spending halved.
    assert (
        describe("spend_trend", LAPSED | {"spend_trend": -1 / 3})
        == "spending down 50% on the previous 90 days"
    )
    assert (
        describe("spend_trend", LAPSED | {"spend_trend": 0.5})
        == "spending up 200% on the previous 90 days"
    )


def test_top_three_by_absolute_contribution_with_direction_and_no_repeats() -> None:
    contributions = {
        "recency_days": 0.9,
        "recency_gap_ratio": 0.8,
        "frequency": -0.5,
        "spend_trend": 0.3,
        "monetary": 0.01,
        "tenure_days": 0.0,
    }
    reasons = top_reasons(contributions, LAPSED)
    # Together they raise the score: frequency, which lowers it, is not a reason for it.
    assert [r.feature for r in reasons] == ["recency_days", "spend_trend", "monetary"]
    assert [r.direction for r in reasons] == ["raises", "raises", "raises"]
    assert reasons[0].text == "no order for 143 days, 3x longer than usual"


def test_a_low_score_is_explained_by_what_lowers_it() -> None:
    recent = LAPSED | {"recency_days": 1.0, "recency_gap_ratio": 1 / 47.7}
    contributions = {"recency_days": -1.2, "frequency": -0.4, "spend_trend": 0.3, "monetary": 0.2}
    reasons = top_reasons(contributions, recent)
    assert [r.feature for r in reasons] == ["recency_days", "frequency"]
    assert [r.direction for r in reasons] == ["lowers", "lowers"]
    assert reasons[0].text == "last order 1 day ago, sooner than usual (every 48 days)"


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("monetary", -1591.4, "net returns of 1,591 in total"),
        ("spend_90d", -1591.4, "net returns of 1,591 in the last 90 days"),
        ("spend_30d", -12.5, "net returns of 12.50 in the last 30 days"),
        ("spend_365d", 0.0, "nothing spent in the last 365 days"),
        ("avg_order_value", -35.0, "net refunds of 35.00 per order on average"),
        ("avg_order_value", 366.9, "average order 367"),
    ],
)
def test_net_returns_read_as_returns_not_negative_spend(
    feature: str, value: float, text: str
) -> None:
    assert describe(feature, LAPSED | {feature: value}) == text


def test_a_feature_without_wording_still_reads() -> None:
    assert describe("bgnbd_p_alive", {"bgnbd_p_alive": 0.25}) == "bgnbd p alive = 0.25"


def test_real_customers_are_explained_only_by_drivers_on_their_score_s_side() -> None:
    """A stored bundle on the real slice: every churn and LTV reason pushes the way the
    customer's score sits from the model's base, and no net spend reads as negative spending."""
    bundle = read_bundle(TEST_DATA / "bundles" / "with-rolling")
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    features = compute_features(orders, datetime(2011, 9, 11, tzinfo=UTC))
    features = features.filter(pl.col("frequency") >= 1)
    net = (
        churn_contributions(bundle, features)
        .select(bundle.feature_names)
        .sum_horizontal()
        .to_numpy()
    )
    explanations = explain(bundle, features)
    probabilities = score(bundle, features)["churn_probability"].to_list()
    sides = {"raises": 0, "lowers": 0}
    for side, explanation, p in zip(net, explanations, probabilities, strict=True):
        expected = "raises" if side > 0 else "lowers"
        assert explanation.churn, "every real customer has a churn reason"
        assert {r.direction for r in explanation.churn} == {expected}
        # The baseline the page names is the side the reasons are on: above it they raise.
        baseline = explanation.structured().churn_baseline
        assert baseline is not None and (p > baseline) == (expected == "raises"), (p, baseline)
        sides[expected] += 1
        ltv_sides = {r.direction for r in explanation.ltv}
        assert len(ltv_sides) <= 1
        for reason in explanation.churn + explanation.ltv:
            assert not re.search(r"spent -|average order -", reason.text), reason.text
            if reason.direction == "raises" and reason in explanation.churn:
                assert "sooner than usual" not in reason.text, reason.text
                assert not re.fullmatch(r"last order \d+ days? ago", reason.text), reason.text
    assert min(sides.values()) > 0  # both kinds of customer are in the slice
    # The slice has customers whose returns exceed their purchases in a window.
    returns = features.filter(pl.col("spend_90d") < 0).row(0, named=True)
    assert describe("spend_90d", returns).startswith("net returns of ")


@pytest.mark.parametrize("month", range(1, 13))
def test_the_time_of_year_names_the_clocks_month(month: int) -> None:
    sin, cos = SEASON_BY_MONTH[month]
    text = describe("season_cos", LAPSED | {"season_sin": sin, "season_cos": cos})
    assert text == f"the time of year ({calendar.month_name[month]})"


def test_the_time_of_year_is_no_customers_reason_nor_their_side_of_the_base() -> None:
    # The same for every customer at one clock: it would head every customer's reasons.
    reasons = top_reasons({"season_sin": 0.9, "season_cos": 0.8, "frequency": -0.1}, LAPSED)
    assert [(r.feature, r.direction) for r in reasons] == [("frequency", "lowers")]


def test_orders_minutes_apart_read_as_orders_not_as_one_purchase() -> None:
    """Customer 17772 of the Online Retail slice: two invoices eight minutes apart, ten days ago.
    Two purchase occasions give a usual gap of 0.006 days, which is no rhythm; the sentence says
    what the customer did rather than "one purchase so far" or "next order was due 10 days ago"."""
    same_day = LAPSED | {
        "frequency": 2.0,
        "recency_days": 10.07,
        "tenure_days": 10.08,
        "gap_mean_days": 0.0056,
        "days_past_expected_order": 10.07 - 0.0056,
    }
    expected = "2 orders, all within one day, the last 10 days ago"
    assert describe("recency_gap_ratio", same_day) == expected
    assert describe("days_past_expected_order", same_day) == expected
    assert no_usual_gap(same_day | {"tenure_days": 12.0, "frequency": 3.0}) == (
        "3 orders, less than a day apart on average"
    )


def test_the_baseline_is_the_typical_customer_at_this_time_of_year() -> None:
    """Reasons are relative to the base plus the season (the same for every customer); at a base
    of 0.92 a customer at 0.86 is below it, and "lowers" is right."""
    contributions = {"season_sin": 0.3, "season_cos": -0.1, "recency_days": -0.6}
    baseline = baseline_probability(2.2, contributions)
    assert baseline == pytest.approx(1 / (1 + math.exp(-2.4)))
    assert baseline == pytest.approx(0.917, abs=0.001)
    assert baseline_probability(2.2, {"recency_days": 5.0}) == pytest.approx(
        1 / (1 + math.exp(-2.2))
    )
