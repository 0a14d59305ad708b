import pytest

from retention_scoring.reasons import describe, top_reasons

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
    ],
)
def test_wording_of_a_lapsed_customer(feature: str, text: str) -> None:
    assert describe(feature, LAPSED) == text


def test_recency_is_put_against_the_usual_gap() -> None:
    regular = LAPSED | {"recency_days": 50.0, "gap_mean_days": 47.7}
    early = LAPSED | {"recency_days": 10.0}
    one_timer = LAPSED | {"recency_days": 1.0, "gap_mean_days": 0.0}
    assert (
        describe("recency_days", regular) == "no order for 50 days, about as usual (every 48 days)"
    )
    assert (
        describe("recency_days", early) == "no order for 10 days, sooner than usual (every 48 days)"
    )
    assert describe("recency_days", one_timer) == "no order for 1 day"
    assert describe("days_past_expected_order", one_timer) == "one purchase so far, 1 day ago"
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
    assert [r.feature for r in reasons] == ["recency_days", "frequency", "spend_trend"]
    assert [r.direction for r in reasons] == ["raises", "lowers", "raises"]
    assert reasons[0].text == "no order for 143 days, 3x longer than usual"


def test_a_feature_without_wording_still_reads() -> None:
    assert describe("bgnbd_p_alive", {"bgnbd_p_alive": 0.25}) == "bgnbd p alive = 0.25"
