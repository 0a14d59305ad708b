"""Campaign planning: whom to contact for a retention budget, and what it should return.

Each candidate's expected net value of a contact is

    value = p_churn × save_rate × predicted_ltv × (margin − discount) − cost_per_contact

(the share of would-be churners a contact retains, times the gross profit of what they would then
spend, minus the contact's cost). `margin` is the gross margin of a sale at full price: the share
of its revenue left after the cost of the goods. A discount lowers the price but not that cost,
so it comes out of the margin whole: a saved sale of 100 at a 30% margin and a 10% discount
brings 90 of revenue and 20 of gross profit. The default margin of 1 counts revenue as profit
(the saved revenue net of the discount). With one cost per contact, the budget allows at most
k = ⌊budget / cost⌋ contacts, and the plan that maximizes total expected net value is the k
candidates of highest positive value — so sorting is optimal, not a heuristic (a test checks it
against brute force). The same plan is re-valued at half and one-and-a-half times the save rate
(capped at 1) so a marketer sees how much rides on that guess.

Candidates of equal value are taken in the order of their ids when the caller gives them
(`ids_of`): the plan is then a function of the candidates alone, not of the order they were read
in, so sharded replicas that each plan over their own customers merge into the plan one replica
holding everyone makes. Without ids, ties keep candidate order.

It lives in `shared` because two services plan with it: scoring's `POST /v1/campaigns/plan` and
the trainer's run report (a plan for a default budget on the run's customers).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["CampaignPlan", "CampaignRequest", "Scenario", "plan_campaign"]


@dataclass(frozen=True)
class CampaignRequest:
    budget: float
    cost_per_contact: float
    save_rate: float
    discount: float = 0.0
    # Gross margin of a full-price sale, in (0, 1]; 1 counts revenue as profit.
    margin: float = 1.0

    def __post_init__(self) -> None:
        if not (self.budget >= 0 and math.isfinite(self.budget)):
            raise ValueError("budget must be a finite number >= 0")
        if not (self.cost_per_contact > 0 and math.isfinite(self.cost_per_contact)):
            raise ValueError("cost_per_contact must be a finite number > 0")
        if not 0 <= self.save_rate <= 1:
            raise ValueError("save_rate must be between 0 and 1")
        if not 0 <= self.discount < 1:
            raise ValueError("discount must be at least 0 and below 1")
        if not 0 < self.margin <= 1:
            raise ValueError("margin must be above 0 and at most 1")


@dataclass(frozen=True)
class Scenario:
    save_rate: float
    expected_saved_revenue: float  # what the saved customers spend, net of the discount
    expected_gross_profit: float  # what that revenue earns: saved spend × (margin − discount)
    cost: float
    net_profit: float  # gross profit − cost
    roi: float | None  # net profit / cost; None when nobody is contacted


@dataclass(frozen=True)
class CampaignPlan:
    selected: np.ndarray  # indices into the candidates, best first
    expected_value: np.ndarray  # each selected candidate's expected net value
    expected: Scenario
    pessimistic: Scenario
    optimistic: Scenario


def plan_campaign(
    churn_probability: np.ndarray,
    predicted_ltv: np.ndarray,
    request: CampaignRequest,
    ids_of: Callable[[np.ndarray], np.ndarray] | None = None,
) -> CampaignPlan:
    """Choose contacts by expected net value until the budget is spent. `ids_of` gives the ids
    of candidates by position: equal values are then taken in id order."""
    p = np.asarray(churn_probability, dtype=float)
    ltv = np.clip(np.asarray(predicted_ltv, dtype=float), 0, None)  # a negative LTV saves nothing
    value = _values(p, ltv, request.save_rate, request)
    capacity = _capacity(request, len(value))
    # Stable sort on -value: ties keep candidate order, so plans are reproducible.
    order = np.argsort(-value, kind="stable")
    order = order[value[order] > 0]
    if ids_of is not None:
        order = _ties_by_id(order, value, capacity, ids_of)
    selected = order[:capacity]
    return CampaignPlan(
        selected=selected,
        expected_value=value[selected],
        expected=_scenario(p, ltv, selected, request.save_rate, request),
        pessimistic=_scenario(p, ltv, selected, request.save_rate * 0.5, request),
        optimistic=_scenario(p, ltv, selected, min(1.0, request.save_rate * 1.5), request),
    )


def _ties_by_id(
    order: np.ndarray, value: np.ndarray, capacity: int, ids_of: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The first `capacity` of `order` (positions by descending value) with equal values in id
    order. Only the head is looked at: the chosen ones and the tie group cut by the budget, so
    it costs O(capacity) on top of the sort, and nothing when there is no tie."""
    if capacity <= 0 or not len(order):
        return order[:0]
    head = order[: min(capacity, len(order))]
    if len(head) < len(order):  # the group of the last chosen value may run past the cut
        # Binary search by key (`order` is by descending value): no O(n) array built.
        last = -value[head[-1]]
        end = bisect.bisect_right(order, last, lo=len(head), key=lambda i: -value[i])
        head = order[:end]
    values = value[head]
    if len(head) > 1 and bool(np.any(values[1:] == values[:-1])):
        ids = np.asarray(ids_of(head), dtype=str)
        head = head[np.lexsort((ids, -values))]
    return head


def _capacity(request: CampaignRequest, candidates: int) -> int:
    """⌊budget / cost⌋ contacts, at most one per candidate (the quotient may not fit an int:
    1e308 / 1e-6 is infinite in floats)."""
    affordable = request.budget / request.cost_per_contact
    return candidates if affordable >= candidates else int(affordable)


def _values(
    p: np.ndarray, ltv: np.ndarray, save_rate: float, request: CampaignRequest
) -> np.ndarray:
    values: np.ndarray = (
        p * save_rate * ltv * (request.margin - request.discount) - request.cost_per_contact
    )
    return values


def _scenario(
    p: np.ndarray, ltv: np.ndarray, selected: np.ndarray, save_rate: float, request: CampaignRequest
) -> Scenario:
    spend = p[selected] * save_rate * ltv[selected]
    saved = float(np.sum(spend * (1 - request.discount)))
    gross = float(np.sum(spend * (request.margin - request.discount)))
    cost = float(len(selected) * request.cost_per_contact)
    net = gross - cost
    return Scenario(
        save_rate=save_rate,
        expected_saved_revenue=saved,
        expected_gross_profit=gross,
        cost=cost,
        net_profit=net,
        roi=net / cost if cost else None,
    )
