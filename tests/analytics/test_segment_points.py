"""`GET /v1/segments/points` on the running stack: the RFM sample the console's scatter draws.

Each point must be the customer's own features at the tenant clock and the segment scoring gives
them; the sample must be the same customers on every call, and a smaller one inside a larger one.
"""

from __future__ import annotations

import io

import httpx
import polars as pl
import pytest

from retention_cli.stack import Stack
from tests.support.problems import problem_of
from tests.support.stack import READ_KEY, auth, url

pytestmark = pytest.mark.slow


def _points(stack: Stack, key: str = READ_KEY, **params: object) -> httpx.Response:
    return httpx.get(
        f"{url(stack, 'scoring')}/v1/segments/points",
        params=params,
        headers=auth(key),
        timeout=30,
    )


@pytest.fixture(scope="module")
def scored(loaded_stack: Stack) -> dict[str, dict]:
    """Every scored customer's list row, by id."""
    listed = httpx.get(
        f"{url(loaded_stack, 'scoring')}/v1/customers",
        params={"limit": 10_000, "sort": "customer_id"},
        headers=auth(READ_KEY),
        timeout=30,
    ).json()["customers"]
    return {row["customer_id"]: row for row in listed}


def test_without_a_limit_below_the_population_every_customer_is_a_point(
    loaded_stack: Stack, scored: dict[str, dict]
) -> None:
    answer = _points(loaded_stack, limit=10_000)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    segments = httpx.get(
        f"{url(loaded_stack, 'scoring')}/v1/segments", headers=auth(READ_KEY)
    ).json()
    assert body["customers"] == segments["customers"] == len(scored)
    assert body["model_version"] == segments["model_version"]
    assert body["segments"] == [row["segment"] for row in segments["segments"]]
    ids = [point["customer_id"] for point in body["points"]]
    assert ids == sorted(scored)
    for point in body["points"]:
        assert point["segment"] == scored[point["customer_id"]]["segment"]


def test_a_point_is_the_customers_features_at_the_tenant_clock(
    loaded_stack: Stack, scored: dict[str, dict]
) -> None:
    body = _points(loaded_stack, limit=40).json()
    assert len(body["points"]) == 40
    for point in body["points"][:10]:
        features = httpx.get(
            f"{url(loaded_stack, 'scoring')}/v1/customers/{point['customer_id']}/features",
            headers=auth(READ_KEY),
        ).json()
        assert features["as_of"] == body["as_of"]
        for name in ("recency_days", "frequency", "monetary"):
            assert point[name] == pytest.approx(features["features"][name], abs=1e-9), name


def test_the_sample_is_the_same_customers_every_time_and_nested(loaded_stack: Stack) -> None:
    small = _points(loaded_stack, limit=50).json()["points"]
    again = _points(loaded_stack, limit=50).json()["points"]
    larger = _points(loaded_stack, limit=150).json()["points"]
    assert small == again
    assert len(larger) == 150
    assert {p["customer_id"] for p in small} < {p["customer_id"] for p in larger}
    # Not simply the first ids: a sample spread over the population.
    everyone = sorted(
        p["customer_id"] for p in _points(loaded_stack, limit=10_000).json()["points"]
    )
    assert [p["customer_id"] for p in small] != everyone[:50]


def test_csv_carries_the_same_points(loaded_stack: Stack) -> None:
    body = _points(loaded_stack, limit=60).json()
    answer = httpx.get(
        f"{url(loaded_stack, 'scoring')}/v1/segments/points",
        params={"limit": 60},
        headers={**auth(READ_KEY), "Accept": "text/csv"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-total-count"] == str(body["customers"])
    frame = pl.read_csv(io.StringIO(answer.text), schema_overrides={"customer_id": pl.String})
    assert frame.columns == ["customer_id", "segment", "recency_days", "frequency", "monetary"]
    assert frame.to_dicts() == body["points"]


def test_another_tenant_sees_none_of_these_customers(loaded_stack: Stack) -> None:
    # Tenant `other` has no model: the same 503 as every scored route, nothing of `default`.
    answer = _points(loaded_stack, key="e2e-other", limit=10)
    assert answer.status_code == 503
    assert "no champion" in problem_of(answer).detail


@pytest.mark.parametrize("limit", [0, 10_001, "many"])
def test_a_limit_out_of_range_is_a_422_naming_it(loaded_stack: Stack, limit: object) -> None:
    answer = _points(loaded_stack, limit=limit)
    assert answer.status_code == 422
    assert "limit" in answer.text
