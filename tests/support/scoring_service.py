"""A scoring service under test: real bundles in a temporary BentoML store, events on the broker."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import polars as pl

from retention_bundle.bundle import ModelBundle, write_bundle
from retention_shared.config import Settings
from retention_shared.events import CustomerFeatures, ModelPublished, TimeWindow
from retention_shared.features import FEATURE_NAMES, compute_features, history_summaries
from retention_shared.topics import Topics, customer_key
from retention_trainer.pipeline import train_and_backtest
from retention_trainer.refit import refit_for_production
from tests.support.paths import REPO
from tests.support.real_orders import publish
from tests.support.uci_orders import TEST_DATA, load_orders

CHURN_TEST = date(2011, 9, 10)
LTV_TEST = date(2011, 6, 12)


def train_bundle() -> ModelBundle:
    """A real bundle as the trainer publishes it: the pipeline on the Online Retail II slice,
    then the production refit a promoted run gets (about 25 s)."""
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    run = train_and_backtest(
        orders, churn_test_cutoff=CHURN_TEST, ltv_test_cutoff=LTV_TEST, rolling_origins=0
    )
    return refit_for_production(run, orders)


def recalibrated(bundle: ModelBundle, shift: float) -> ModelBundle:
    """The same bundle with the churn calibration's intercept moved: a second, different model."""
    a, b, c = bundle.churn.stack
    churn = dataclasses.replace(bundle.churn, stack=(a, b, c + shift))
    return dataclasses.replace(bundle, churn=churn)


def store_bundle(bundle: ModelBundle, bentoml_home: Path, work_dir: Path) -> str:
    """Save `bundle` in the BentoML store at `bentoml_home`; returns its tag."""
    directory = work_dir / f"bundle-{time.monotonic_ns()}"
    write_bundle(bundle, directory)
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.scoring.service.store_bundle", str(directory)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def model_published(tenant_id: str, tag: str) -> ModelPublished:
    return ModelPublished(
        tenant_id=tenant_id,
        model_tag=tag,
        model_version=tag.split(":", 1)[1],
        run_id=f"test-{tag}",
        training_window=TimeWindow(
            start=datetime(2009, 12, 1, tzinfo=UTC), end=datetime(2011, 9, 10, tzinfo=UTC)
        ),
        metrics={"roc_auc": 0.9},
    )


async def announce(settings: Settings, event: ModelPublished) -> None:
    topic = Topics.with_prefix(settings.topic_prefix).model_events
    await publish(settings, topic, [(event.tenant_id.encode(), event.to_bytes())])


def feature_events(orders: pl.DataFrame) -> list[CustomerFeatures]:
    """`CustomerFeatures` as the features service sends them after replaying `orders`: each
    customer at the tenant clock of their last event (one partition), with the compact history."""
    clocks = orders.group_by("tenant_id", "customer_id").agg(as_of=pl.col("occurred_at").max())
    features = compute_features(orders, clocks)
    histories = history_summaries(orders, clocks)
    return [
        CustomerFeatures(
            tenant_id=row["tenant_id"],
            customer_id=row["customer_id"],
            as_of=row["as_of"],
            features={name: row[name] for name in FEATURE_NAMES},
            history=histories[(row["tenant_id"], row["customer_id"])],
        )
        for row in features.iter_rows(named=True)
    ]


async def publish_features(settings: Settings, events: list[CustomerFeatures]) -> None:
    topic = Topics.with_prefix(settings.topic_prefix).customer_features
    records = [(customer_key(e.tenant_id, e.customer_id), e.to_bytes()) for e in events]
    await publish(settings, topic, records)


def wait_for(
    check: Callable[[], bool], timeout: float = 60.0, every: float = 0.3, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        time.sleep(every)


async def eventually(
    client: httpx.AsyncClient,
    address: str,
    done: Callable[[httpx.Response], bool],
    headers: dict[str, str],
    timeout: float = 60.0,
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(address, headers=headers)
        if done(response):
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{address} answered {response.status_code}: {response.text}")
        await asyncio.sleep(0.3)


def serve_champion(
    settings: Settings,
    scoring_url: str,
    headers: dict[str, str],
    bundle: ModelBundle,
    vectors: list[CustomerFeatures],
    bentoml_home: Path,
    work_dir: Path,
) -> str:
    """A running stack's scoring serving `bundle` as the champion of tenant `default` for
    `vectors`' customers: stored, the vectors published, announced, and waited for."""
    tag = store_bundle(bundle, bentoml_home, work_dir)
    asyncio.run(publish_features(settings, vectors))
    asyncio.run(announce(settings, model_published("default", tag)))
    wait_for(
        lambda: httpx.get(f"{scoring_url}/v1/segments", headers=headers).status_code == 200,
        timeout=120,
        what="scoring serves the champion",
    )
    return tag
