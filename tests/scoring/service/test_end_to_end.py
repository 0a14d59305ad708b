"""Orders in through ingest, features through the features service, scores out of scoring.

The three services run as processes on the real broker. A bundle trained offline on real data
is saved in a temporary BentoML store and announced on `model-events`; the served scores must
equal the same bundle on the offline features (the shared `compute_features` at the same
clock). A second model is then announced while clients hammer the score endpoint: no request
fails, and each client sees the old model, then the new one, never back.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from retention_bundle.bundle import ModelBundle
from retention_scoring.scoring import score_customers
from retention_shared.config import Settings
from retention_shared.events import CustomerScore, DriftDetected, decode_event
from retention_shared.features import compute_features
from retention_shared.topics import Topics
from tests.support.features_service import read_to_end
from tests.support.kafka_reading import read_until
from tests.support.real_orders import order_stream
from tests.support.scoring_service import (
    announce,
    model_published,
    recalibrated,
    store_bundle,
)
from tests.support.stack import auth, running_stack, url
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow

SLICE = TEST_DATA / "online_retail_slice.parquet"
CHANGES = ("risk_band", "value_tier", "segment")


def _expected(bundle: ModelBundle, orders: pl.DataFrame) -> pl.DataFrame:
    return score_customers(bundle, compute_features(orders, orders["occurred_at"].max()))


def _matches(served: list[dict], expected: pl.DataFrame) -> bool:
    if len(served) != expected.height:
        return False
    want = {r["customer_id"]: r for r in expected.iter_rows(named=True)}
    return all(
        c["customer_id"] in want
        and abs(c["churn_probability"] - want[c["customer_id"]]["churn_probability"]) < 1e-9
        and c["value_tier"] == want[c["customer_id"]]["value_tier"]
        for c in served
    )


def _latest_scores(records: list) -> dict[str, CustomerScore]:
    latest = {}
    for record in records:
        event = decode_event(CustomerScore, record.value)
        latest[event.customer_id] = event
    return latest


def _state(expected: pl.DataFrame) -> dict[str, tuple[str, str, str]]:
    return {r["customer_id"]: tuple(r[c] for c in CHANGES) for r in expected.iter_rows(named=True)}


async def test_served_scores_equal_offline_scores_and_a_swap_fails_no_request(
    kafka_settings: Settings, tmp_path: Path, bundle: ModelBundle
) -> None:
    settings = kafka_settings
    topics = Topics.with_prefix(settings.topic_prefix)
    home = tmp_path / "bentoml"
    second = recalibrated(bundle, 0.8)
    tag_1 = store_bundle(bundle, home, tmp_path)
    tag_2 = store_bundle(second, home, tmp_path)
    orders = order_stream(SLICE, tmp_path / "offline").orders
    expected_1, expected_2 = _expected(bundle, orders), _expected(second, orders)

    with running_stack(
        settings,
        tmp_path / "stack.log",
        services=("ingest", "features", "scoring"),
        BENTOML_HOME=str(home),
        RETENTION_DRIFT_CHECK_MINUTES="0.05",
    ) as stack:
        base = url(stack, "scoring")
        await announce(settings, model_published("default", tag_1))
        async with httpx.AsyncClient(timeout=30) as client:
            with SLICE.open("rb") as file:
                upload = await client.post(
                    f"{url(stack, 'ingest')}/v1/uploads",
                    files={"file": ("online_retail_slice.parquet", file)},
                    headers=auth(),
                )
            assert upload.status_code == 202, upload.text

            everyone = {"sort": "customer_id", "limit": 10000}
            deadline = time.monotonic() + 120
            while True:
                listed = await client.get(f"{base}/v1/customers", params=everyone, headers=auth())
                if listed.status_code == 200 and _matches(listed.json()["customers"], expected_1):
                    break
                assert time.monotonic() < deadline, listed.text[:2000]
                await asyncio.sleep(0.5)

            # Serving a model needs XGBoost, not scikit-learn (retention_scoring.__main__).
            [scoring] = [s for s in stack.running if s.name == "scoring"]
            maps = Path(f"/proc/{scoring.process.pid}/maps").read_text()
            assert "xgboost" in maps and "sklearn" not in maps

            ids = expected_1["customer_id"].to_list()
            for row in expected_1.sample(30, seed=5).iter_rows(named=True):
                got = (
                    await client.get(
                        f"{base}/v1/customers/{row['customer_id']}/score", headers=auth()
                    )
                ).json()
                for field in ("churn_probability", "predicted_ltv", "ltv_low", "ltv_high"):
                    assert got[field] == pytest.approx(row[field], rel=1e-9, abs=1e-9), field
                assert [got[c] for c in CHANGES] == [row[c] for c in CHANGES]
                assert got["model_version"] == tag_1.split(":")[1]

            # Score events: eventually the latest per customer is their current state.
            scores_1 = await read_until(
                settings,
                topics.customer_scores,
                lambda records: (
                    {
                        c: tuple(getattr(e, f) for f in CHANGES)
                        for c, e in _latest_scores(records).items()
                    }
                    == _state(expected_1)
                ),
                timeout=60,
            )
            assert len(scores_1) >= len(ids)

            # The swap, under load.
            version_1, version_2 = tag_1.split(":")[1], tag_2.split(":")[1]
            swapped = asyncio.Event()
            failures: list[str] = []

            async def hammer(seed: int) -> list[str]:
                rng = random.Random(seed)
                versions: list[str] = []
                after_swap = 0
                while after_swap < 20:
                    response = await client.get(
                        f"{base}/v1/customers/{rng.choice(ids)}/score", headers=auth()
                    )
                    if response.status_code != 200:
                        failures.append(response.text)
                        continue
                    versions.append(response.json()["model_version"])
                    if versions[-1] == version_2:
                        swapped.set()
                        after_swap += 1
                return versions

            workers = [asyncio.create_task(hammer(seed)) for seed in range(4)]
            await asyncio.sleep(0.5)
            await announce(settings, model_published("default", tag_2))
            seen = await asyncio.wait_for(asyncio.gather(*workers), timeout=90)
            assert not failures, failures[:3]
            for versions in seen:
                assert version_1 in versions, "the load started before the swap"
                first_new = versions.index(version_2)
                assert set(versions[first_new:]) == {version_2}, "never back to the old model"

            for row in expected_2.sample(20, seed=6).iter_rows(named=True):
                got = (
                    await client.get(
                        f"{base}/v1/customers/{row['customer_id']}/score", headers=auth()
                    )
                ).json()
                assert got["churn_probability"] == pytest.approx(row["churn_probability"], rel=1e-9)
                assert got["risk_band"] == row["risk_band"]

            # After the swap, events only for customers whose band, tier or segment changed.
            state_1, state_2 = _state(expected_1), _state(expected_2)
            changed = {c for c in state_2 if state_2[c] != state_1[c]}
            assert changed, "the second model moves some bands"

            def new_model_events(records: list) -> list[CustomerScore]:
                decoded = (decode_event(CustomerScore, r.value) for r in records)
                return [e for e in decoded if e.model_version == version_2]

            await read_until(
                settings,
                topics.customer_scores,
                lambda records: len(new_model_events(records)) >= len(changed),
                timeout=60,
            )
            await asyncio.sleep(2)  # nothing more should come
            after = new_model_events(await read_to_end(settings, topics.customer_scores))
            assert sorted(e.customer_id for e in after) == sorted(changed)
            for event in after:
                assert event.model_version == version_2
                want = [
                    f
                    for f, a, b in zip(
                        CHANGES, state_1[event.customer_id], state_2[event.customer_id], strict=True
                    )
                    if a != b
                ]
                assert event.changed == want
                assert event.reasons

            # Drift: at most one DriftDetected per model version, however many checks ran.
            await asyncio.sleep(4)
            card = (await client.get(f"{base}/v1/model", headers=auth())).json()
            drift_records = await read_until(
                settings,
                topics.drift_events,
                lambda records: card["drift"]["status"] != "drift" or len(records) >= 1,
                timeout=30,
            )
            events = [decode_event(DriftDetected, r.value) for r in drift_records]
            per_version = [e.model_version for e in events]
            assert len(per_version) == len(set(per_version))
            if card["drift"]["status"] == "drift":
                assert version_2 in per_version
                assert set(events[-1].psi) == set(card["feature_schema"])
