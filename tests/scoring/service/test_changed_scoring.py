"""Scoring only what changed: a changed vector is patched into the cached population, and the
whole tenant is re-scored when its clock crosses a day (or settles after a burst).

First in process: a patched population equals a whole pass at the same clock, row for row.
Then scoring as a process on the real broker: an order for one customer re-scores that customer
only, and a vector on a later day re-scores everyone once (counted by
`retention_scoring_customers_scored_total{reason}`).
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from polars.testing import assert_frame_equal

from retention_bundle.bundle import ModelBundle
from retention_scoring.champions import LoadedChampion
from retention_scoring.population import (
    DAY_US,
    Population,
    compute_population,
    pass_reason,
    patch_population,
    snapshot,
)
from retention_scoring.population import changes as table_changes
from retention_scoring.scoring import Explanation, explain
from retention_scoring.store import FeatureStore, TenantTable, to_microseconds
from retention_shared.config import Settings
from retention_shared.events import CustomerFeatures
from tests.support.scoring_service import (
    feature_events,
    model_published,
    publish_features,
    serve_champion,
    wait_for,
)
from tests.support.stack import auth, running_stack, url
from tests.support.uci_orders import TEST_DATA, load_orders

pytestmark = pytest.mark.slow

SLICE = TEST_DATA / "online_retail_slice.parquet"
FULL = ("first", "model", "removed", "day", "settle")


def _events(tenant: str) -> list[CustomerFeatures]:
    return sorted(feature_events(load_orders(SLICE, tenant=tenant)), key=lambda e: e.customer_id)


def _later(event: CustomerFeatures, as_of: datetime) -> CustomerFeatures:
    """The customer's vector after one more order at `as_of` (frequency up by one)."""
    features = dict(event.features)
    features["frequency"] = features["frequency"] + 1
    features["recency_days"] = 0.0
    return event.model_copy(update={"as_of": as_of, "features": features})


def _same_day_later(clock: datetime) -> datetime:
    later = clock + timedelta(minutes=30)
    assert later.date() == clock.date(), "the slice's clock is too close to midnight"
    return later


def _champion(bundle: ModelBundle) -> LoadedChampion:
    now = datetime.now(UTC)
    tag = "retention-acme:v1"
    return LoadedChampion("acme", tag, "v1", bundle, model_published("acme", tag), now, now)


def test_a_patched_population_equals_a_whole_pass_at_its_clock(bundle: ModelBundle) -> None:
    events = _events("acme")
    store = FeatureStore()
    store.apply((event, i % 3) for i, event in enumerate(events[:-1]))
    table = store.table("acme")
    assert isinstance(table, TenantTable)
    champion = _champion(bundle)
    base = table.clock_us
    population = compute_population(champion, snapshot(table, champion, base))
    assert pass_reason(population, table, "v1", base, 60, time.monotonic()) is None

    # One customer orders again the same day, and a new customer arrives.
    clock = max(e.as_of for e in events)
    store.apply([(_later(events[5], _same_day_later(clock)), 2), (events[-1], 1)])
    assert table.clock_us // DAY_US == base // DAY_US
    # While vectors keep coming the population's clock stays; the changed rows are patched in.
    assert pass_reason(population, table, "v1", table.clock_us, 60, time.monotonic()) == "changed"
    patch = table_changes(table, population)
    assert patch.rows.tolist() == [table.row(events[5].customer_id), len(table) - 1]
    patched = patch_population(population, patch)

    whole = compute_population(champion, snapshot(table, champion, base))
    assert patched.key == whole.key
    assert_frame_equal(patched.features, whole.features)
    assert_frame_equal(patched.scores, whole.scores)
    assert patched.cutoffs == whole.cutoffs
    _assert_same(patched, whole)
    assert patched.position(events[-1].customer_id) == len(table) - 1
    # The changed customer is at its own new clock; the rest at the population's.
    row = patched.features.row(patched.position(events[5].customer_id), named=True)
    assert row["as_of"] == _same_day_later(clock)

    # Quiet for longer than the settle time: everyone moves to the exact clock.
    assert pass_reason(patched, table, "v1", table.clock_us, 0, time.monotonic()) == "settle"
    # A later day moves everyone whatever the settle time; a new model and a removal too.
    store.apply([(_later(events[7], clock + timedelta(days=1)), 0)])
    assert pass_reason(patched, table, "v1", table.clock_us, 60, time.monotonic()) == "day"
    assert pass_reason(patched, table, "v2", base, 60, time.monotonic()) == "model"
    assert store.remove("acme", events[9].customer_id)
    assert pass_reason(patched, table, "v1", base, 60, time.monotonic()) == "removed"


def _assert_same(population: Population, whole: Population) -> None:
    """Frame for frame, and every array a reader takes."""
    assert population.key == whole.key
    assert population.cutoffs == whole.cutoffs
    assert_frame_equal(population.features, whole.features)
    assert_frame_equal(population.scores, whole.scores)
    assert population.index == whole.index
    assert np.array_equal(population.partitions, whole.partitions)
    everyone = np.arange(len(whole))
    assert np.array_equal(population.computed_at(everyone), whole.computed_at(everyone))
    some = [0, len(whole) // 2, len(whole) - 1]  # rows read without whole frames
    assert_frame_equal(population.score_rows(some), whole.scores[some])
    assert_frame_equal(population.feature_rows(some), whole.features[some])


def _richer(event: CustomerFeatures, as_of: datetime, factor: float) -> CustomerFeatures:
    """The customer's vector after a large order: money features times `factor`."""
    later = _later(event, as_of)
    money = ("monetary", "avg_order_value", "spend_30d", "spend_90d", "spend_180d", "spend_365d")
    features = {n: v * factor if n in money else v for n, v in later.features.items()}
    return later.model_copy(update={"features": features})


def test_many_patches_equal_whole_passes_and_earlier_populations_stay_whole(
    bundle: ModelBundle,
) -> None:
    """New customers, cutoffs moving, an erasure between patches, and populations read after
    later patches were written over them: each is the whole pass at its own generation."""
    events = _events("acme")
    held = 40  # customers arriving during the stream
    store = FeatureStore()
    store.apply((event, i % 3) for i, event in enumerate(events[:-held]))
    table = store.table("acme")
    assert isinstance(table, TenantTable)
    champion = _champion(bundle)
    base = table.clock_us
    clock = max(e.as_of for e in events)
    population = compute_population(champion, snapshot(table, champion, base))
    kept = {0: (population, compute_population(champion, snapshot(table, champion, base)))}
    explained = events[1].customer_id
    before = population.explanation(explained)  # cached with the population's columns
    rng = np.random.default_rng(7)
    arriving = iter(events[-held:])
    moved_cutoffs = retiered_rows = 0
    for step in range(1, 25):
        at = clock + timedelta(seconds=step)
        known = [events[int(i)] for i in rng.choice(len(events) - held, 5, replace=False)]
        changed = [(_later(e, at), 0) for e in known]
        if step % 3 == 0:  # a big spender moves the value-tier cutoffs
            changed.append((_richer(known[0], at, 40.0), 1))
        if step == 2:
            changed.append((_later(events[1], at), 0))
        changed += [(next(arriving), 2) for _ in range(step % 4)]
        store.apply(changed)
        if step == 12:  # an erasure: a whole pass ("removed"), then patches go on from it
            assert store.remove("acme", events[20].customer_id)
            assert pass_reason(population, table, "v1", base, 60, time.monotonic()) == "removed"
            population = compute_population(champion, snapshot(table, champion, base))
            continue
        assert pass_reason(population, table, "v1", base, 60, time.monotonic()) == "changed"
        patch = table_changes(table, population)
        previous_tiers = population.scores["value_tier"]
        patched = patch_population(population, patch)
        whole = compute_population(champion, snapshot(table, champion, base))
        _assert_same(patched, whole)
        if patched.cutoffs != population.cutoffs:
            moved_cutoffs += 1
            unpatched = np.setdiff1d(np.arange(len(population)), patch.rows)
            tiers = patched.scores["value_tier"]
            retiered_rows += int(
                (tiers.gather(unpatched) != previous_tiers.gather(unpatched)).sum()
            )
        if step == 2:  # the changed customer's reasons are recomputed, not the cached ones
            assert patched.explanation(explained) != before
            assert patched.explanation(explained) == explain_row(whole, explained)
        if step in (3, 7, 15):
            kept[step] = (patched, whole)
        if step == 9:  # read once while superseded: it restores its own copy midway
            _assert_same(kept[7][0], kept[7][1])
        population = patched
    assert moved_cutoffs >= 4 and retiered_rows > 0, (moved_cutoffs, retiered_rows)
    for earlier, whole in kept.values():  # superseded by later patches, read only now
        _assert_same(earlier, whole)
    assert kept[0][0].explanation(explained) == before


def explain_row(population: Population, customer_id: str) -> Explanation:
    position = population.position(customer_id)
    assert position is not None
    return explain(population.champion.bundle, population.features.slice(position, 1))[0]


def _scored(text: str) -> dict[str, float]:
    found = re.findall(
        r'^retention_scoring_customers_scored_total\{[^}]*reason="(\w+)"[^}]*\} (\S+)$', text, re.M
    )
    return {reason: float(value) for reason, value in found}


def _features_as_of(client: httpx.Client, base: str, customer_id: str) -> str:
    answer = client.get(f"{base}/v1/customers/{customer_id}/score", headers=auth())
    assert answer.status_code == 200, answer.text
    return str(answer.json()["features_as_of"])


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_an_order_rescores_its_customer_only_and_a_new_day_everyone_once(
    kafka_settings: Settings, tmp_path: Path, bundle: ModelBundle
) -> None:
    settings = kafka_settings
    events = _events("default")
    customers = len(events)
    clock = max(e.as_of for e in events)
    with (
        running_stack(
            settings,
            tmp_path / "stack.log",
            services=("scoring",),
            BENTOML_HOME=str(tmp_path / "bentoml"),
            # Only the rules under test move the clock: no settling, no drift pass meanwhile.
            RETENTION_SCORING_SETTLE_SECONDS="3600",
            RETENTION_DRIFT_CHECK_MINUTES="600",
        ) as stack,
        httpx.Client(timeout=30) as client,
    ):
        base = url(stack, "scoring")

        def scored() -> dict[str, float]:
            return _scored(client.get(f"{base}/metrics").text)

        serve_champion(settings, base, auth(), bundle, events, tmp_path / "bentoml", tmp_path)
        wait_for(lambda: scored().get("first", 0) + scored().get("model", 0) >= customers)
        start = scored()
        assert sum(start.get(r, 0) for r in FULL) == customers, start
        assert _features_as_of(client, base, events[0].customer_id).startswith(
            clock.strftime("%Y-%m-%dT%H:%M")
        )

        # An order for one customer the same day: that customer is re-scored, nobody else.
        ordered = _same_day_later(clock)
        asyncio.run(publish_features(settings, [_later(events[3], ordered)]))
        wait_for(
            lambda: _features_as_of(client, base, events[3].customer_id) == _iso(ordered),
            what="the order reflected in the customer's score",
        )
        listed = client.get(
            f"{base}/v1/customers", params={"sort": "customer_id", "limit": 10000}, headers=auth()
        ).json()
        assert listed["total"] == customers
        after_order = scored()
        assert after_order.get("changed", 0) - start.get("changed", 0) == 1, after_order
        assert {r: after_order.get(r, 0) for r in FULL} == {r: start.get(r, 0) for r in FULL}
        unchanged = _features_as_of(client, base, events[0].customer_id)
        assert unchanged.startswith(clock.strftime("%Y-%m-%dT%H:%M"))

        # A vector on a later day moves everyone's clock: one whole pass, then nothing more.
        next_day = clock + timedelta(days=1)
        asyncio.run(publish_features(settings, [_later(events[4], next_day)]))
        wait_for(
            lambda: _features_as_of(client, base, events[0].customer_id) == _iso(next_day),
            what="everyone moved to the new day",
        )
        for event in events[:20]:
            assert _features_as_of(client, base, event.customer_id) == _iso(next_day)
        time.sleep(1.0)
        final = scored()
        assert final.get("day", 0) - after_order.get("day", 0) == customers, final
        assert final.get("changed", 0) == after_order.get("changed", 0)
        assert sum(final.get(r, 0) for r in FULL) == customers * 2
        assert to_microseconds(next_day) // DAY_US != to_microseconds(clock) // DAY_US
