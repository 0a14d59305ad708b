import itertools

import numpy as np
import pytest

from retention_shared.campaigns import CampaignRequest, plan_campaign


def brute_force_best(p: np.ndarray, ltv: np.ndarray, request: CampaignRequest) -> float:
    """The best total expected net value over every subset the budget allows."""
    value = (
        p * request.save_rate * ltv * (request.margin - request.discount) - request.cost_per_contact
    )
    best = 0.0
    for size in range(1, len(p) + 1):
        if size * request.cost_per_contact > request.budget:
            break
        for subset in itertools.combinations(range(len(p)), size):
            best = max(best, float(value[list(subset)].sum()))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_plan_is_the_brute_force_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 10
    p = rng.uniform(0, 1, n)
    ltv = rng.gamma(1.5, 200, n)
    request = CampaignRequest(
        budget=float(rng.integers(0, 12)) * 5,
        cost_per_contact=5.0,
        save_rate=float(rng.uniform(0.05, 0.5)),
        discount=float(rng.choice([0.0, 0.1, 0.2])),
        margin=float(rng.choice([1.0, 0.6, 0.35])),
    )
    plan = plan_campaign(p, ltv, request)
    assert plan.expected.net_profit == pytest.approx(brute_force_best(p, ltv, request), abs=1e-9)
    assert plan.expected.cost <= request.budget
    assert len(set(plan.selected.tolist())) == len(plan.selected)


def test_numbers_of_a_small_plan_by_hand() -> None:
    p = np.array([0.9, 0.5, 0.1, 0.8])
    ltv = np.array([1000.0, 400.0, 5000.0, 50.0])
    # values at save rate 0.2, discount 0.1, cost 10: 152, 26, 80, -2.8
    plan = plan_campaign(
        p, ltv, CampaignRequest(budget=25, cost_per_contact=10, save_rate=0.2, discount=0.1)
    )
    assert plan.selected.tolist() == [0, 2]  # two contacts fit the budget; the best two
    assert plan.expected_value.tolist() == pytest.approx([152.0, 80.0])
    assert plan.expected.expected_saved_revenue == pytest.approx(162 + 90)
    assert plan.expected.cost == 20
    assert plan.expected.net_profit == pytest.approx(232)
    assert plan.expected.roi == pytest.approx(232 / 20)
    assert plan.pessimistic.save_rate == pytest.approx(0.1)
    assert plan.pessimistic.net_profit == pytest.approx(126 - 20)
    assert plan.optimistic.save_rate == pytest.approx(0.3)
    assert plan.optimistic.net_profit == pytest.approx(378 - 20)
    # Without a margin, revenue counts as profit.
    assert plan.expected.expected_gross_profit == plan.expected.expected_saved_revenue


def test_a_margin_counts_the_discount_against_the_gross_profit() -> None:
    p = np.array([0.9, 0.5, 0.1, 0.8])
    ltv = np.array([1000.0, 400.0, 5000.0, 50.0])
    request = CampaignRequest(
        budget=25, cost_per_contact=10, save_rate=0.2, discount=0.1, margin=0.4
    )
    # spend kept = p × 0.2 × LTV: 180, 40, 100, 8; gross profit = spend × (0.4 − 0.1);
    # values: 44, 2, 20, -7.6
    plan = plan_campaign(p, ltv, request)
    assert plan.selected.tolist() == [0, 2]
    assert plan.expected_value.tolist() == pytest.approx([44.0, 20.0])
    assert plan.expected.expected_saved_revenue == pytest.approx((180 + 100) * 0.9)
    assert plan.expected.expected_gross_profit == pytest.approx((180 + 100) * 0.3)
    assert plan.expected.net_profit == pytest.approx(84 - 20)
    assert plan.expected.roi == pytest.approx(64 / 20)
    assert plan.pessimistic.net_profit == pytest.approx(42 - 20)


def test_a_discount_at_or_above_the_margin_contacts_nobody() -> None:
    p, ltv = np.array([0.9, 0.8]), np.array([1000.0, 5000.0])
    for margin in (0.1, 0.05):
        request = CampaignRequest(
            budget=100, cost_per_contact=1, save_rate=0.5, discount=0.1, margin=margin
        )
        plan = plan_campaign(p, ltv, request)
        assert plan.selected.tolist() == [] and plan.expected.cost == 0


def test_nobody_is_contacted_at_a_loss_or_without_budget() -> None:
    p, ltv = np.array([0.05, 0.5]), np.array([10.0, 300.0])
    assert (
        plan_campaign(
            p, ltv, CampaignRequest(budget=100, cost_per_contact=50, save_rate=0.2)
        ).selected.tolist()
        == []
    )
    empty = plan_campaign(p, ltv, CampaignRequest(budget=0, cost_per_contact=1, save_rate=0.2))
    assert empty.selected.tolist() == [] and empty.expected.roi is None


def test_optimistic_save_rate_is_capped_at_one() -> None:
    plan = plan_campaign(
        np.array([1.0]),
        np.array([100.0]),
        CampaignRequest(budget=1, cost_per_contact=1, save_rate=0.9),
    )
    assert plan.optimistic.save_rate == 1.0


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"budget": -1}, "budget"),
        ({"cost_per_contact": 0}, "cost_per_contact"),
        ({"save_rate": 1.5}, "save_rate"),
        ({"discount": 1.0}, "discount"),
        ({"margin": 0.0}, "margin"),
        ({"margin": 1.5}, "margin"),
        ({"budget": float("nan")}, "budget"),
    ],
)
def test_bad_requests_name_the_field(fields: dict[str, float], problem: str) -> None:
    base = {"budget": 100.0, "cost_per_contact": 1.0, "save_rate": 0.2}
    with pytest.raises(ValueError, match=problem):
        CampaignRequest(**(base | fields))


def test_equal_values_are_taken_in_id_order_whatever_the_candidates_order() -> None:
    # Five candidates worth 45 each, one worth 85, one worth less than its cost: a budget for 3 takes
    # the best one, then the two smallest ids of the tied five, best first then by id.
    p = np.array([0.5, 0.5, 0.9, 0.5, 0.5, 0.1, 0.5])
    ltv = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 10.0, 100.0])
    ids = np.array(["e", "b", "z", "d", "a", "y", "c"])
    request = CampaignRequest(budget=15, cost_per_contact=5, save_rate=1.0)
    plan = plan_campaign(p, ltv, request, ids_of=lambda rows: ids[rows])
    assert ids[plan.selected].tolist() == ["z", "a", "b"]
    # Without ids, ties keep the candidates' order.
    assert ids[plan_campaign(p, ltv, request).selected].tolist() == ["z", "e", "b"]
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(ids))
        shuffled = ids[order]
        again = plan_campaign(
            p[order], ltv[order], request, ids_of=lambda rows, shuffled=shuffled: shuffled[rows]
        )
        assert shuffled[again.selected].tolist() == ["z", "a", "b"]
        assert again.expected == plan.expected
    # A budget for every candidate: the tied ones in id order after the best, none worthless.
    everyone = CampaignRequest(budget=1e6, cost_per_contact=5, save_rate=1.0)
    plan = plan_campaign(p, ltv, everyone, ids_of=lambda rows: ids[rows])
    assert ids[plan.selected].tolist() == ["z", "a", "b", "c", "d", "e"]
