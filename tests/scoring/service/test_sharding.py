"""Sharded scoring replicas on the real broker: each holds only its `customer-features`
partitions, yet any replica answers for any customer — by forwarding to the owner — before,
during and after a third replica joins and takes partitions over; lists are gathered whole.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from retention_bundle.bundle import ModelBundle
from retention_cli.stack import Stack
from retention_scoring.api.routing import SERVED_BY
from retention_scoring.shards import customer_partition
from retention_scoring.tiers import SKETCH_POINTS
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.broker import isolated_settings
from tests.support.scoring_service import (
    announce,
    feature_events,
    model_published,
    publish_features,
    store_bundle,
    wait_for,
)
from tests.support.stack import auth, running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

SHARDED = {"RETENTION_SCORING_SHARDED": "true"}


def _replicas(base: str) -> dict:
    return httpx.get(f"{base}/v1/replicas", headers=auth(), timeout=10).json()


def _owners(base: str) -> dict[int, str]:
    """Partition → the replica that owns it, as `base` routes."""
    view = _replicas(base)
    return {p: r["replica_id"] for r in view["replicas"] for p in r["owns"]}


def _held(bases: list[str]) -> dict[str, set[int]]:
    """Replica → the partitions it has materialized (its own announcement)."""
    mine = [_replicas(base) for base in bases]
    return {
        view["replica_id"]: {
            int(p)
            for r in view["replicas"]
            if r["replica_id"] == view["replica_id"]
            for p in r["partitions"]
        }
        for view in mine
    }


async def _ask_everyone(
    bases: list[str], customers: list[str]
) -> dict[str, tuple[int, str, float | None]]:
    """Each customer's score from one of `bases` in turn: (status, served by, churn)."""
    async with httpx.AsyncClient(timeout=20, headers=auth()) as client:

        async def one(i: int, customer: str) -> tuple[str, tuple[int, str, float | None]]:
            answer = await client.get(f"{bases[i % len(bases)]}/v1/customers/{customer}/score")
            churn = answer.json()["churn_probability"] if answer.status_code == 200 else None
            return customer, (answer.status_code, answer.headers.get(SERVED_BY, ""), churn)

        results = []
        for start in range(0, len(customers), 32):
            chunk = list(enumerate(customers))[start : start + 32]
            results += await asyncio.gather(*(one(i, c) for i, c in chunk))
    return dict(results)


def _whole_list(base: str, limit: int) -> list[dict]:
    rows, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": limit, "sort": "revenue_at_risk"}
        if cursor:
            params["cursor"] = cursor
        page = httpx.get(f"{base}/v1/customers", params=params, headers=auth(), timeout=30)
        assert page.status_code == 200, page.text
        rows += page.json()["customers"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return rows


def test_two_sharded_replicas_answer_every_customer_through_a_rebalance(
    kafka: EmbeddedBroker, tmp_path: Path, bundle: ModelBundle
) -> None:
    settings = isolated_settings(kafka, tmp_path / "data")
    home = tmp_path / "bentoml"
    tag = store_bundle(bundle, home, tmp_path)
    orders = load_orders(TEST_DATA / "online_retail_slice.parquet", tenant="default")
    events = feature_events(orders)
    asyncio.run(publish_features(settings, events))
    customers = sorted(e.customer_id for e in events)
    partitions = settings.topic_partitions
    partition = {c: customer_partition("default", c, partitions) for c in customers}
    assert len(set(partition.values())) == partitions, "the slice spreads over every partition"
    env = {**SHARDED, "BENTOML_HOME": str(home)}

    # What one replica holding everyone answers: the reference (started first: a replica that
    # joins after two replicas left together waits for the broker long — seen without sharding).
    with running_stack(
        settings, tmp_path / "one.log", services=("scoring",), BENTOML_HOME=str(home)
    ) as one:
        asyncio.run(announce(settings, model_published("default", tag)))
        base = url(one, "scoring")
        wait_for(
            lambda: _segments(base).get("customers") == len(customers),
            timeout=90,
            what="one replica scored everyone",
        )
        alone, alone_segments = _whole_list(base, 10_000), _segments(base)
        alone_answers = _tenant_wide(base, alone_segments)
        # Every customer's recency, frequency and spend (the sample holds everyone): what a
        # profile's quartiles are checked against when a replica summarized its members.
        everyone_points = _points(base, 10_000)["points"]

    with (
        running_stack(settings, tmp_path / "a.log", services=("scoring",), **env) as a,
        running_stack(settings, tmp_path / "b.log", services=("scoring",), **env) as b,
    ):
        bases = [url(a, "scoring"), url(b, "scoring")]
        wait_for(
            lambda: (
                all(len(_owners(base)) == partitions for base in bases)
                and all(len(h) < partitions for h in _held(bases).values())
            ),
            timeout=90,
            what="both replicas own a share and every partition has an owner",
        )
        wait_for(
            lambda: all(
                s == 200 for s, _, _ in asyncio.run(_ask_everyone(bases, customers)).values()
            ),
            timeout=90,
            what="every customer scored",
        )

        # Each customer answered from either replica, by the owner of their partition.
        owners = _owners(bases[0])
        assert owners == _owners(bases[1])
        held = _held(bases)
        assert held[owners[0]].isdisjoint(held[next(r for r in held if r != owners[0])])
        answers = asyncio.run(_ask_everyone(bases, customers))
        answers_flipped = asyncio.run(_ask_everyone(bases[::-1], customers))
        for customer in customers:
            for status, served_by, _ in (answers[customer], answers_flipped[customer]):
                assert status == 200
                assert served_by == owners[partition[customer]], customer
        assert {c: a[2] for c, a in answers.items()} == {
            c: a[2] for c, a in answers_flipped.items()
        }

        # The one-replica answer (value tiers cut at the tenant-wide quantiles: merged from
        # each replica's LTVs), up to the last bit of a float.
        wait_for(
            lambda: _same_rows(_whole_list(bases[0], 10_000), alone),
            timeout=30,
            what="the one-replica list",
        )
        _assert_same_segments(_segments(bases[1]), alone_segments)
        # Lists are gathered from both: the same whole list from either replica, paged or not,
        # each customer once, with the score the customer's own route answers.
        whole = httpx.get(
            f"{bases[0]}/v1/customers", params={"limit": 10_000}, headers=auth(), timeout=30
        ).json()
        assert whole["total"] == len(customers) and whole["next_cursor"] is None
        assert sorted(r["customer_id"] for r in whole["customers"]) == customers
        assert _whole_list(bases[1], 37) == whole["customers"]
        assert _whole_list(bases[0], 100) == whole["customers"]
        churn = {r["customer_id"]: r["churn_probability"] for r in whole["customers"]}
        assert churn == {c: a[2] for c, a in answers.items()}
        segments = [_segments(base) for base in bases]
        _assert_same_segments(segments[0], segments[1])
        assert segments[0]["customers"] == len(customers)
        # Insights, the scatter's points, segment profiles and campaign plans are gathered too:
        # from either replica, what one replica holding everyone answers.
        for base in bases:
            _assert_same_tenant_wide(_tenant_wide(base, alone_segments), alone_answers)
            _assert_profiles_close(_tenant_wide(base, alone_segments), everyone_points)

        # A replica that does not answer (frozen: still announced, so still the owner): the
        # gathered answers are a 503 to retry, never a partial number.
        _frozen_replica_gives_no_partial_answer(b, bases[0])

        # A batch by id is scattered to the owners and comes back in the order asked.
        asked = [*customers[::7], "no-such-customer", customers[0]]
        batch = httpx.post(
            f"{bases[1]}/v1/score",
            json={"customer_ids": asked, "include_reasons": False},
            headers=auth(),
            timeout=30,
        )
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
        assert [r["customer_id"] for r in results] == asked
        assert [r["found"] for r in results] == [c != "no-such-customer" for c in asked]
        assert all(
            r["score"]["churn_probability"] == churn[r["customer_id"]]
            for r in results
            if r["found"]
        )

        # A third replica joins: the group moves partitions to it; during the rebalance and
        # after it every customer keeps an answer, from any replica.
        with running_stack(settings, tmp_path / "c.log", services=("scoring",), **env) as c:
            everyone = [*bases, url(c, "scoring")]
            deadline = time.monotonic() + 120
            rounds = 0
            while True:
                answers = asyncio.run(_ask_everyone(everyone, customers))
                failed = {c: a for c, a in answers.items() if a[0] != 200}
                assert not failed, list(failed.items())[:5]
                rounds += 1
                held = _held(everyone)
                settled = all(held.values()) and sum(len(h) for h in held.values()) == partitions
                if settled and all(len(_owners(base)) == partitions for base in everyone):
                    break
                assert time.monotonic() < deadline, held
            assert rounds >= 1
            owners = _owners(everyone[2])
            assert len(set(owners.values())) == 3, owners
            answers = asyncio.run(_ask_everyone(everyone, customers))
            for customer, (status, served_by, score) in answers.items():
                assert status == 200 and served_by == owners[partition[customer]], customer
                assert score == pytest.approx(churn[customer], rel=1e-12)
            # Value tiers are cut at each replica's own shard's LTV quantiles (docs/scoring.md,
            # "Sharding"): the shards changed, so the tiers may; nothing else does.
            # The new owners' LTVs reach the others with their next announcement: then the
            # tiers are the same again, and so is the whole list.
            wait_for(
                lambda: _same_rows(_whole_list(everyone[2], 100), whole["customers"]),
                timeout=30,
                what="the same list after the rebalance",
            )
            _assert_same_segments(_segments(everyone[2]), segments[0])

        # One replica stops (its tombstone: the others stop routing to it at once); the other
        # takes its partitions over and answers everyone again. Stopping one at a time: a
        # replica that joins after two left together waits long for the broker (Tansu; seen
        # without sharding too), which would hold up the tests after this one.
        b.stop()
        wait_for(
            lambda: _owners(bases[0]) == dict.fromkeys(range(partitions), _replica_id(bases[0])),
            timeout=90,
            what="the remaining replica owns every partition",
        )
        answers = asyncio.run(_ask_everyone(bases[:1], customers))
        assert all(status == 200 for status, _, _ in answers.values())


def _frozen_replica_gives_no_partial_answer(frozen: Stack, asked: str) -> None:
    group = frozen.running[0].process.pid  # the service's own process group
    os.killpg(group, signal.SIGSTOP)
    try:
        with httpx.Client(base_url=asked, headers=auth(), timeout=30) as client:
            answers = [
                client.get("/v1/insights"),
                client.post("/v1/campaigns/plan", json=_PLANS["some"]),
            ]
    finally:
        os.killpg(group, signal.SIGCONT)
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["Retry-After"]
        assert "did not answer" in answer.json()["detail"]


def _replica_id(base: str) -> str:
    return str(_replicas(base)["replica_id"])


def _same(one: object, other: object) -> bool:
    """Equal, floats up to their last bits (a vectorized pass over another set of rows may
    round the last bit differently)."""
    if isinstance(one, float) and isinstance(other, float):
        return one == pytest.approx(other, rel=1e-12)
    return one == other


def _same_rows(rows: list[dict], others: list[dict]) -> bool:
    return len(rows) == len(others) and all(
        row.keys() == other.keys() and all(_same(row[k], other[k]) for k in row)
        for row, other in zip(rows, others, strict=True)
    )


def _assert_same_segments(one: dict, other: dict) -> None:
    """Equal up to the order sums were added in (each replica adds its own share first)."""
    assert one["customers"] == other["customers"]
    assert [r["segment"] for r in one["segments"]] == [r["segment"] for r in other["segments"]]
    for row, same in zip(one["segments"], other["segments"], strict=True):
        for field, value in row.items():
            if isinstance(value, float):
                assert value == pytest.approx(same[field], rel=1e-9), (row, same)
            else:
                assert value == same[field], (row, same)


def _segments(base: str) -> dict:
    answer = httpx.get(f"{base}/v1/segments", headers=auth(), timeout=30)
    return answer.json() if answer.status_code == 200 else {}


# Plans whose budget chooses some of the candidates, and all of them (both filtered).
_PLANS = {
    "some": {"budget": 150.0, "cost_per_contact": 5.0, "save_rate": 0.25, "contacts_limit": 20},
    "all": {
        "budget": 1e9,
        "cost_per_contact": 1.0,
        "save_rate": 0.3,
        "margin": 0.5,
        "filters": {"risk_band": ["high", "medium"]},
    },
}
_SAMPLE = 100  # points: fewer than the slice's customers, so a sample is drawn


def _points(base: str, limit: int) -> dict:
    answer = httpx.get(
        f"{base}/v1/segments/points", params={"limit": limit}, headers=auth(), timeout=30
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _tenant_wide(base: str, segments: dict) -> dict:
    """The four tenant-wide answers a sharded replica gathers (JSON; the plan's CSV too)."""
    client = httpx.Client(base_url=base, headers=auth(), timeout=30)
    with client:
        insights = client.get("/v1/insights")
        profiles = {
            row["segment"]: client.get(f"/v1/segments/{row['segment']}/profile")
            for row in segments["segments"]
        }
        plans = {
            name: client.post("/v1/campaigns/plan", json=body) for name, body in _PLANS.items()
        }
        csv = client.post("/v1/campaigns/plan", json=_PLANS["some"], headers={"Accept": "text/csv"})
    for answer in [insights, *profiles.values(), *plans.values(), csv]:
        assert answer.status_code == 200, answer.text
        assert "X-Retention-Covers-Partitions" not in answer.headers
    return {
        "insights": insights.json(),
        "points": _points(base, _SAMPLE),
        "profiles": {segment: answer.json() for segment, answer in profiles.items()},
        "plans": {name: answer.json() for name, answer in plans.items()},
        "plan_csv": (csv.text, csv.headers["X-Total-Count"]),
    }


def _assert_close(one: object, other: object, rel: float, where: str = "") -> None:
    """Equal, floats up to `rel` (sums of shares are added in another order)."""
    if isinstance(one, dict) and isinstance(other, dict):
        assert one.keys() == other.keys(), where
        for key in one:
            _assert_close(one[key], other[key], rel, f"{where}/{key}")
    elif isinstance(one, list) and isinstance(other, list):
        assert len(one) == len(other), where
        for i, (a, b) in enumerate(zip(one, other, strict=True)):
            _assert_close(a, b, rel, f"{where}/{i}")
    elif isinstance(one, float) or isinstance(other, float):
        assert one == pytest.approx(other, rel=rel, abs=1e-9), where
    else:
        assert one == other, where


def _assert_same_tenant_wide(gathered: dict, alone: dict) -> None:
    _assert_close(gathered["insights"], alone["insights"], rel=1e-9, where="insights")
    assert gathered["insights"]["kpis"][0]["value"] == alone["insights"]["kpis"][0]["value"]
    # The plan: the same contacts in the same order, the same sums (the selected candidates'
    # values are added in the same order: up to the last bits of the LTVs themselves).
    _assert_close(gathered["plans"], alone["plans"], rel=1e-12, where="plans")
    some = gathered["plans"]["some"]
    assert some["contacts_total"] == 30 < some["candidates"] and len(some["contacts"]) == 20
    assert gathered["plan_csv"][1] == alone["plan_csv"][1]
    rows, alone_rows = (csv.splitlines() for csv, _ in (gathered["plan_csv"], alone["plan_csv"]))
    assert [r.split(",")[0] for r in rows] == [r.split(",")[0] for r in alone_rows]
    # The scatter: the same deterministic sample of every replica's customers.
    points, alone_points = gathered["points"], alone["points"]
    assert len(points["points"]) == _SAMPLE and points["customers"] == alone_points["customers"]
    _assert_close(points, alone_points, rel=1e-12, where="points")
    for name, profile in gathered["profiles"].items():
        assert profile["customers"] == alone["profiles"][name]["customers"]
        if profile["customers"] <= SKETCH_POINTS:  # every replica sent its members' values
            _assert_close(profile, alone["profiles"][name], rel=1e-12, where=name)


def _assert_profiles_close(gathered: dict, everyone: list[dict]) -> None:
    """Each quartile within the stated accuracy (docs/scoring.md, "Sharding"): between the
    members' own quantiles at 1/1024 + 1/200,000 of a rank either side — checked on the
    features the points carry (every customer's)."""
    rank = 1 / 1024 + 1 / 200_000
    for segment, profile in gathered["profiles"].items():
        members = [p for p in everyone if p["segment"] == segment]
        assert profile["customers"] == len(members)
        for spread in profile["features"]:
            values = np.array([p[spread["feature"]] for p in members if spread["feature"] in p])
            if not len(values):
                continue
            for key, q in (("p25", 0.25), ("median", 0.5), ("p75", 0.75)):
                low, high = np.quantile(values, [max(0.0, q - rank), min(1.0, q + rank)])
                assert low - 1e-9 <= spread[key] <= high + 1e-9, (segment, spread, key)
