"""`GET /v1/segments/{segment}/profile` on the running stack, against numpy over the served
features: each segment's members come from the customer list, each member's values from
`GET /v1/customers/{id}/features`, and the quartiles from `numpy.percentile`."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from retention_cli.stack import Stack
from retention_shared.features import FEATURE_NAMES, FEATURES_BY_NAME
from tests.support.problems import first_problem, problem_of
from tests.support.stack import READ_KEY, auth, url

pytestmark = pytest.mark.slow


def profile(stack: Stack, segment: str, key: str = READ_KEY) -> httpx.Response:
    return httpx.get(f"{url(stack, 'scoring')}/v1/segments/{segment}/profile", headers=auth(key))


def test_every_segments_quartiles_are_numpys_over_its_customers_features(
    loaded_stack: Stack,
) -> None:
    with httpx.Client(base_url=url(loaded_stack, "scoring"), headers=auth(READ_KEY)) as client:
        segments = client.get("/v1/segments").json()["segments"]
        for row in segments:
            name = row["segment"]
            members = client.get("/v1/customers", params={"segment": name, "limit": 10_000}).json()[
                "customers"
            ]
            answer = client.get(f"/v1/segments/{name}/profile")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["segment"] == name
            assert body["customers"] == len(members) == row["customers"]
            assert [f["feature"] for f in body["features"]] == list(FEATURE_NAMES)
            vectors = [
                client.get(f"/v1/customers/{m['customer_id']}/features").json() for m in members
            ]
            if vectors:
                # The same clock as the features the console shows beside the profile.
                assert {v["as_of"] for v in vectors} == {body["as_of"]}
            for spread in body["features"]:
                feature = spread["feature"]
                assert spread["label"] == FEATURES_BY_NAME[feature].label
                assert spread["unit"] == FEATURES_BY_NAME[feature].unit
                if not vectors:
                    assert spread["median"] is spread["p25"] is spread["p75"] is None
                    continue
                values = np.array([v["features"][feature] for v in vectors])
                p25, median, p75 = np.percentile(values, [25, 50, 75])
                assert spread["p25"] == pytest.approx(p25, rel=1e-9, abs=1e-9), (name, feature)
                assert spread["median"] == pytest.approx(median, rel=1e-9, abs=1e-9)
                assert spread["p75"] == pytest.approx(p75, rel=1e-9, abs=1e-9)


def test_an_unknown_segment_is_a_404_naming_the_models_segments(loaded_stack: Stack) -> None:
    segments = httpx.get(f"{url(loaded_stack, 'scoring')}/v1/segments", headers=auth(READ_KEY))
    response = profile(loaded_stack, "Nobody")
    assert response.status_code == 404
    field, problem = first_problem(response)
    assert field == "segment"
    assert "no segment 'Nobody'" in problem
    for row in segments.json()["segments"]:
        assert repr(row["segment"]) in problem


def test_another_tenant_sees_none_of_this_ones_segments(loaded_stack: Stack) -> None:
    # Tenant `other` has no model: 503 and why, whatever segment of `default` it names.
    response = profile(loaded_stack, "Champions", key="e2e-other")
    assert response.status_code == 503
    assert "no champion" in problem_of(response).detail


def test_a_request_without_a_key_is_a_401(loaded_stack: Stack) -> None:
    response = httpx.get(f"{url(loaded_stack, 'scoring')}/v1/segments/Champions/profile")
    assert response.status_code == 401
