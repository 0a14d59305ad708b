"""`GET /v1/customers/{id}/score/history` on the running stack: the changes on `customer-scores`.

Read-only: the customers' histories are what the stack published while it scored the slice.
Erasure's effect on a history is tested without the stack (tests/scoring).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.events import CustomerScore
from retention_shared.topics import Topics, customer_key
from tests.support.kafka_reading import read_until
from tests.support.problems import field_problems, first_problem
from tests.support.stack import READ_KEY, auth, url

pytestmark = pytest.mark.slow


def _history(stack: Stack, customer_id: str, key: str = READ_KEY, **params: object):
    return httpx.get(
        f"{url(stack, 'scoring')}/v1/customers/{customer_id}/score/history",
        params=params,
        headers=auth(key),
    )


@pytest.fixture(scope="module")
def customers(loaded_stack: Stack) -> list[str]:
    """The two customers with the most revenue at risk and the two with the least."""
    listed = httpx.get(
        f"{url(loaded_stack, 'scoring')}/v1/customers", params={"limit": 10_000}, headers=auth()
    ).json()["customers"]
    return [row["customer_id"] for row in (listed[:2] + listed[-2:])]


def test_the_history_is_what_customer_scores_carries(
    loaded_stack: Stack, customers: list[str]
) -> None:
    histories = {c: _history(loaded_stack, c, limit=100).json() for c in customers}
    keys = {customer_key("default", c): c for c in customers}
    topic = Topics.with_prefix(loaded_stack.settings.topic_prefix).customer_scores

    def seen(records: list) -> dict[str, list[CustomerScore]]:
        found: dict[str, list[CustomerScore]] = {c: [] for c in customers}
        for record in records:
            if record.key in keys and record.value is not None:
                found[keys[record.key]].append(CustomerScore.model_validate_json(record.value))
        return found

    def every_change_read(records: list) -> bool:
        got = seen(records)
        return all(len(got[c]) >= len(histories[c]["changes"]) for c in customers)

    records = asyncio.run(read_until(loaded_stack.settings, topic, every_change_read))
    for customer_id, on_topic in seen(records).items():
        history = histories[customer_id]
        assert history["customer_id"] == customer_id and history["kept"] == 100
        assert history["changes"], f"{customer_id} was scored, so announced at least once"
        newest_first = [e.model_dump(mode="json") for e in reversed(on_topic)]
        assert [CustomerScore(**c).model_dump(mode="json") for c in history["changes"]] == (
            newest_first
        )


def test_the_latest_change_is_the_current_score(loaded_stack: Stack, customers: list[str]) -> None:
    for customer_id in customers:
        latest = _history(loaded_stack, customer_id, limit=1).json()["changes"]
        score = httpx.get(
            f"{url(loaded_stack, 'scoring')}/v1/customers/{customer_id}/score", headers=auth()
        ).json()
        assert len(latest) == 1
        for field in ("risk_band", "value_tier", "segment", "action", "model_version"):
            assert latest[0][field] == score[field], field
        for field in ("churn_probability", "predicted_ltv", "ltv_low", "ltv_high"):
            assert latest[0][field] == pytest.approx(score[field]), field
        assert latest[0]["features_as_of"] == score["features_as_of"]


def test_an_unknown_or_another_tenants_customer_is_a_404(
    loaded_stack: Stack, customers: list[str]
) -> None:
    unknown = _history(loaded_stack, "no-such-customer")
    foreign = _history(loaded_stack, customers[0], key="e2e-other")
    assert unknown.status_code == foreign.status_code == 404
    assert field_problems(foreign) == [("customer_id", f"no customer {customers[0]!r}")]


@pytest.mark.parametrize("limit", [0, 101, "ten"])
def test_a_limit_out_of_range_is_a_422_naming_it(
    loaded_stack: Stack, customers: list[str], limit: object
) -> None:
    response = _history(loaded_stack, customers[0], limit=limit)
    assert response.status_code == 422
    assert first_problem(response)[0] == "query.limit"


def test_without_a_key_is_a_401(loaded_stack: Stack, customers: list[str]) -> None:
    response = httpx.get(
        f"{url(loaded_stack, 'scoring')}/v1/customers/{customers[0]}/score/history"
    )
    assert response.status_code == 401
