"""Insights without I/O: the KPI definitions, and a narrative that quotes only its own answer."""

from __future__ import annotations

import polars as pl

from retention_scoring.insights import kpis, revenue_at_risk_shares
from retention_scoring.narrative import narrate
from retention_shared.score_summaries import segment_table
from tests.support.narrative_check import check_narrative

# a: bought in both windows (retained) · b: only in the earlier one (lost) · c: only recently
# (new or back) · d: in neither.
FEATURES = pl.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d"],
        "orders_90d": [2.0, 0.0, 1.0, 0.0],
        "orders_180d": [3.0, 1.0, 1.0, 0.0],
        "monetary": [700.0, 200.0, 100.0, -5.0],
    }
)
SCORES = pl.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d"],
        "segment": ["Champions", "At risk", "Top {5}%", "At risk"],
        "risk_band": ["low", "high", "medium", "high"],
        "churn_probability": [0.1, 0.8, 0.4, 0.9],
        "predicted_ltv": [1000.0, 300.0, 50.0, 10.0],
        "revenue_at_risk": [100.0, 240.0, 20.0, 9.0],
    }
)
PREVIOUS = SCORES.with_columns(
    risk_band=pl.Series(["low", "high", "high", "high"]),
    predicted_ltv=pl.Series([900.0, 300.0, 50.0, 10.0]),
    revenue_at_risk=pl.Series([90.0, 270.0, 25.0, 9.0]),
)
ACTIONS = {"Champions": "Reward them.", "At risk": "Win them back.", "Top {5}%": "Keep 5% off."}


def _by_name(figures: list) -> dict:
    return {kpi.name: kpi for kpi in figures}


def test_kpis_follow_their_definitions() -> None:
    figures = _by_name(kpis(FEATURES, SCORES, PREVIOUS))
    assert figures["customers"].value == 4
    assert figures["active_customers"].value == 2  # a and c
    assert figures["retention_rate"].value == 0.5  # of a and b, a came back
    assert figures["at_risk_customers"].value == 2
    assert figures["revenue_at_risk"].value == 369.0
    assert figures["predicted_revenue"].value == 1360.0
    # The model does not enter the first three: the previous champion gives the same.
    for name in ("customers", "active_customers", "retention_rate"):
        assert not figures[name].model_dependent
        assert figures[name].previous == figures[name].value
    assert figures["at_risk_customers"].previous == 3
    assert figures["revenue_at_risk"].previous == 394.0
    assert figures["predicted_revenue"].previous == 1260.0


def test_without_a_previous_champion_every_previous_is_null() -> None:
    assert all(kpi.previous is None for kpi in kpis(FEATURES, SCORES, None))


def test_money_of_another_ltv_horizon_is_not_compared() -> None:
    figures = _by_name(kpis(FEATURES, SCORES, PREVIOUS, comparable_money=False))
    assert figures["at_risk_customers"].previous == 3
    assert figures["revenue_at_risk"].previous is None
    assert figures["predicted_revenue"].previous is None


def test_nobody_active_before_means_no_retention_rate() -> None:
    fresh = FEATURES.with_columns(orders_180d=pl.col("orders_90d"))
    assert _by_name(kpis(fresh, SCORES, None))["retention_rate"].value is None


def _answer(features: pl.DataFrame, scores: pl.DataFrame, previous: pl.DataFrame | None) -> dict:
    """The parts of an insights answer the narrative points into, built as the route does."""
    figures = kpis(features, scores, previous)
    rows = segment_table(scores, features["monetary"], ACTIONS)
    for row, share in zip(rows, revenue_at_risk_shares(rows), strict=True):
        row["revenue_at_risk_share"] = share
    sentences = narrate(figures, rows, 90, 180)
    return {
        "active_days": 90,
        "ltv_horizon_days": 180,
        "kpis": [vars(kpi) for kpi in figures],
        "segments": rows,
        "narrative": [{"text": s.text, "numbers": [vars(n) for n in s.numbers]} for s in sentences],
    }


def test_every_number_of_the_narrative_is_in_the_answer() -> None:
    answer = _answer(FEATURES, SCORES, PREVIOUS)
    check_narrative(answer)
    text = [s["text"] for s in answer["narrative"]]
    assert text == [
        "Of 4 customers, 2 ordered in the last 90 days.",
        "The retention rate is 50%: the share of the customers who ordered in the 90 days "
        "before that who ordered again in the last 90.",
        "2 customers are at high risk of churning, down from 3 under the previous model, and "
        "the revenue at risk is 369, down from 394 under the previous model.",
        "Customers are predicted to spend 1,360 over the next 180 days, up from 1,260 under "
        "the previous model.",
        "The 'Champions' segment holds 70% of revenue to date with 1 customer.",
        "The 'At risk' segment holds 67% of the revenue at risk (249) with 2 customers.",
    ]
    assert _answer(FEATURES, SCORES, PREVIOUS) == answer  # deterministic


def test_one_segment_leading_revenue_and_risk_gets_one_sentence() -> None:
    riskier = SCORES.with_columns(revenue_at_risk=pl.Series([500.0, 240.0, 20.0, 9.0]))
    answer = _answer(FEATURES, riskier, None)
    check_narrative(answer)
    assert answer["narrative"][-1]["text"] == (
        "The 'Champions' segment holds 70% of revenue to date and 65% of the revenue at risk "
        "(500) with 1 customer."
    )
    assert len(answer["narrative"]) == 5


def test_a_narrative_without_previous_model_or_retention_still_checks_out() -> None:
    fresh = FEATURES.with_columns(orders_180d=pl.col("orders_90d"))
    answer = _answer(fresh, SCORES, None)
    check_narrative(answer)
    assert "previous" not in " ".join(s["text"] for s in answer["narrative"])
    assert "no retention rate yet" in answer["narrative"][1]["text"]


def test_a_narrative_of_no_customers() -> None:
    answer = _answer(FEATURES.clear(), SCORES.clear(), None)
    check_narrative(answer)
    assert [s["text"] for s in answer["narrative"]] == [
        "There are no customers yet: orders sent to ingest are scored as they arrive."
    ]
