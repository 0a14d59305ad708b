"""Retraining on what actually happens, as processes on the real broker (issue #15 item 7).

- Growth: real invoices streamed through ingest's `POST /v1/orders` grow the lake; below
  RETENTION_RETRAIN_GROWTH_ORDERS_SHARE of the latest run's orders nothing happens, past it
  exactly one run follows (trigger `growth`), however many watch ticks see the growth before
  that run reads the lake; what it read is the next baseline.
- The outcome monitor: two tenants train on the same real history up to 2011-09-09, then the
  next three months arrive — as they happened for one, with every later order moved to another
  customer for the other (the history no longer says who comes back, as when a retailer's
  customers change under a model). Once the horizon has passed, the first model's realized
  ROC-AUC stays near its backtest and nothing is published; the second's falls to a coin's, one
  `DriftDetected(kind=performance)` goes out and exactly one retrain follows.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from retention_cli.stack import Stack
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import DriftDetected, DriftKind, OrderEvent, decode_event
from retention_shared.topics import Topics
from tests.support.features_service import read_to_end
from tests.support.real_orders import order_stream, publish
from tests.support.stack import API_KEY, auth, running_stack, stack_of_its_own, url
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow

OTHER_KEY = "e2e-other"
FINISHED = {"published", "rejected", "skipped", "failed"}
# Ticks of the lake watch: a few of them pass between a change and an assertion that nothing
# (more) happened.
WATCH_SECONDS = 0.5
QUIET = 8 * WATCH_SECONDS


def runs(stack: Stack, key: str = API_KEY) -> list[dict]:
    answer = httpx.get(f"{url(stack, 'trainer')}/v1/runs", headers=auth(key))
    assert answer.status_code == 200, answer.text
    return answer.json()["runs"]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise TimeoutError(what)


def finished_runs(stack: Stack, count: int, key: str = API_KEY) -> list[dict]:
    """Once the tenant has `count` runs and all have finished: its runs, newest first."""
    return wait_for(
        lambda: (
            (found := runs(stack, key))
            and len(found) == count
            and all(r["status"] in FINISHED for r in found)
            and found
        ),
        f"{count} finished runs",
    )


def lake_orders(stack: Stack, key: str = API_KEY) -> int:
    return httpx.get(f"{url(stack, 'trainer')}/v1/lake", headers=auth(key)).json()["orders"]


# --- growth -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def growth_stack(
    kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("growth")
    with stack_of_its_own(
        kafka,
        work,
        "growth",
        services=("ingest", "trainer"),
        RETENTION_TRAINER_WATCH_SECONDS=str(WATCH_SECONDS),
    ) as running:
        yield running


def invoices(start: str, end: str) -> list[dict]:
    """The slice's invoices of known customers dated in [start, end), as `POST /v1/orders`
    takes them."""
    raw = pl.read_parquet(TEST_DATA / "online_retail_slice.parquet").filter(
        pl.col("CustomerID").is_not_null()
        & pl.col("InvoiceDate").is_between(
            datetime.fromisoformat(start), datetime.fromisoformat(end), closed="left"
        )
    )
    return [
        {
            "order_id": invoice,
            "customer_id": str(int(rows["CustomerID"][0])),
            "order_datetime": rows["InvoiceDate"][0].isoformat(),
            "country": rows["Country"][0],
            "lines": [
                {"product_id": code, "quantity": quantity, "unit_price": price}
                for code, quantity, price in rows.select(
                    "StockCode", "Quantity", "UnitPrice"
                ).iter_rows()
            ],
        }
        for (invoice,), rows in raw.group_by("InvoiceNo", maintain_order=True)
    ]


def stream(stack: Stack, orders: list[dict]) -> int:
    """Send the orders through ingest's HTTP API; how many it accepted."""
    accepted = 0
    for start in range(0, len(orders), 200):
        answer = httpx.post(
            f"{url(stack, 'ingest')}/v1/orders",
            json={"orders": orders[start : start + 200]},
            headers=auth(),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        accepted += answer.json()["accepted"]
    return accepted


def lake_reaches(stack: Stack, orders: int) -> None:
    wait_for(lambda: lake_orders(stack) >= orders, f"{orders} orders in the lake", timeout=60)


def test_streamed_orders_retrain_once_the_lake_has_grown_past_the_setting(
    growth_stack: Stack,
) -> None:
    stack = growth_stack
    # No run yet: streamed orders alone do not start a tenant's first one.
    base = stream(stack, invoices("2010-12-01", "2011-02-01"))
    lake_reaches(stack, base)
    time.sleep(QUIET)
    assert runs(stack) == []

    # A run reads the lake (too little history: skipped, with what it read).
    asked = httpx.post(f"{url(stack, 'trainer')}/v1/retrain", headers=auth())
    assert asked.status_code == 202, asked.text
    (first,) = finished_runs(stack, 1)
    assert first["status"] == "skipped" and first["data"]["orders"] == lake_orders(stack)
    read = first["data"]["orders"]

    # A week more: under 10% more orders and under 30 days of new data → no run.
    small = stream(stack, invoices("2011-02-01", "2011-02-08"))
    lake_reaches(stack, read + small)
    assert 0 < lake_orders(stack) - read < 0.10 * read
    time.sleep(QUIET)
    assert [r["run_id"] for r in runs(stack)] == [first["run_id"]]

    # The rest of February: past 10% → one run, whatever number of watch ticks see the growth
    # before that run has read the lake.
    big = stream(stack, invoices("2011-02-08", "2011-03-01"))
    lake_reaches(stack, read + small + big)
    assert lake_orders(stack) - read >= 0.10 * read
    newest, older = finished_runs(stack, 2)
    assert older["run_id"] == first["run_id"]
    assert [t["kind"] for t in newest["triggers"]] == ["growth"]
    assert "RETENTION_RETRAIN_GROWTH_ORDERS_SHARE=0.1" in newest["triggers"][0]["detail"]
    assert newest["data"]["orders"] == lake_orders(stack)
    # The new run is the baseline now: nothing more follows.
    time.sleep(QUIET)
    assert len(runs(stack)) == 2


# --- the outcome monitor ----------------------------------------------------------------------

SLICE = TEST_DATA / "online_retail_II_slice.parquet"
SPLIT = datetime(2011, 9, 10, tzinfo=UTC)  # history ends 2011-09-09; data through 2011-12-09


MONITOR_ENV = {
    "RETENTION_TRAINER_WATCH_SECONDS": str(WATCH_SECONDS),
    # Orders here are published as a replay, not streamed; growth stays out of the counts.
    "RETENTION_RETRAIN_GROWTH_ORDERS_SHARE": "0",
    "RETENTION_RETRAIN_GROWTH_DAYS": "0",
    "RETENTION_TRAINER_ROLLING_ORIGINS": "0",
}


@pytest.fixture(scope="module")
def monitor_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outcomes")


@pytest.fixture(scope="module")
def monitor_stack(kafka: EmbeddedBroker, monitor_work: Path) -> Iterator[Stack]:
    with stack_of_its_own(
        kafka, monitor_work, "outcomes", services=("trainer",), **MONITOR_ENV
    ) as running:
        yield running


def split(records: list[tuple[bytes, bytes]]) -> tuple[list, list]:
    history, future = [], []
    for key, payload in records:
        event = decode_event(OrderEvent, payload)
        (history if event.occurred_at < SPLIT else future).append((key, payload))
    return history, future


def moved_to_other_customers(
    history: list[tuple[bytes, bytes]], future: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The future orders, each customer's given to another customer (a fixed permutation)."""
    events = [decode_event(OrderEvent, payload) for _, payload in history + future]
    customers = sorted({event.customer_id for event in events})
    shuffled = customers.copy()
    random.Random(7).shuffle(shuffled)
    moved = dict(zip(customers, shuffled, strict=True))
    records = []
    for _, payload in future:
        event = decode_event(OrderEvent, payload)
        event = event.model_copy(update={"customer_id": moved[event.customer_id]})
        records.append((f"{event.tenant_id}:{event.customer_id}".encode(), event.to_bytes()))
    return records


def outcomes(stack: Stack, key: str) -> list[dict]:
    answer = httpx.get(f"{url(stack, 'trainer')}/v1/outcomes", headers=auth(key))
    assert answer.status_code == 200, answer.text
    return answer.json()["outcomes"]


def drift_events(stack: Stack) -> list[DriftDetected]:
    topic = Topics.with_prefix(stack.settings.topic_prefix).drift_events
    records = asyncio.run(read_to_end(stack.settings, topic))
    return [decode_event(DriftDetected, record.value) for record in records]


def metric(stack: Stack, name: str, tenant: str) -> float | None:
    for line in httpx.get(f"{url(stack, 'trainer')}/metrics").text.splitlines():
        if line.startswith(f'{name}{{tenant="{tenant}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_model_whose_realized_auc_is_poor_triggers_exactly_one_retrain(
    monitor_stack: Stack, monitor_work: Path, tmp_path: Path
) -> None:
    stack = monitor_stack
    topic = Topics.with_prefix(stack.settings.topic_prefix).transactions
    good_history, good_future = split(order_stream(SLICE, tmp_path / "d", "default").records)
    poor_history, poor_future = split(order_stream(SLICE, tmp_path / "o", "other").records)
    asyncio.run(publish(stack.settings, topic, good_history + poor_history))
    for key in (API_KEY, OTHER_KEY):
        asked = httpx.post(f"{url(stack, 'trainer')}/v1/retrain", headers=auth(key))
        assert asked.status_code == 202, asked.text
    champions = {key: finished_runs(stack, 1, key)[0] for key in (API_KEY, OTHER_KEY)}
    for champion in champions.values():
        assert champion["status"] == "published", champion["message"]
        assert champion["production"]["data_end"] == "2011-09-09"
    # The horizon of the scores of 2011-09-09 has not passed: nothing to evaluate yet.
    time.sleep(QUIET)
    assert outcomes(stack, API_KEY) == outcomes(stack, OTHER_KEY) == []

    poor_future = moved_to_other_customers(poor_history, poor_future)
    asyncio.run(publish(stack.settings, topic, good_future + poor_future))
    good = wait_for(lambda: outcomes(stack, API_KEY), "the good model's outcome")
    poor = wait_for(lambda: outcomes(stack, OTHER_KEY), "the poor model's outcome")

    (good,), (poor,) = good, poor
    for key, outcome in ((API_KEY, good), (OTHER_KEY, poor)):
        run = httpx.get(
            f"{url(stack, 'trainer')}/v1/runs/{champions[key]['run_id']}", headers=auth(key)
        ).json()
        assert outcome["model_tag"] == run["model_tag"]
        assert outcome["score_date"] == "2011-09-09" and outcome["horizon_days"] == 90
        assert outcome["backtest_roc_auc"] == run["report"]["churn"]["model"]["roc_auc"]
    assert not good["drift"] and good["auc_drop"] < 0.10
    assert poor["drift"] and poor["auc_drop"] > 0.10 and abs(poor["roc_auc"] - 0.5) < 0.1
    assert metric(stack, "retention_trainer_realized_churn_roc_auc", "default") == good["roc_auc"]
    assert metric(stack, "retention_trainer_realized_churn_brier", "other") == poor["brier"]

    # One performance drift, the poor model's; one retrain follows it, and only for that tenant.
    newest, _ = finished_runs(stack, 2, OTHER_KEY)
    assert [t["kind"] for t in newest["triggers"]] == ["performance"]
    time.sleep(QUIET)
    (drift,) = [e for e in drift_events(stack) if e.kind is DriftKind.PERFORMANCE]
    assert drift.tenant_id == "other"
    assert drift.model_version == champions[OTHER_KEY]["model_tag"].split(":", 1)[1]
    assert drift.realized["roc_auc"] == poor["roc_auc"] and drift.threshold == 0.10
    assert len(runs(stack, OTHER_KEY)) == 2 and len(runs(stack, API_KEY)) == 1
    assert len(outcomes(stack, OTHER_KEY)) == 1

    # A restart evaluates nothing again and announces nothing again; the gauges come back.
    trainer = next(service for service in stack.running if service.name == "trainer")
    trainer.process.terminate()
    trainer.process.wait(30)
    with running_stack(
        stack.settings,
        monitor_work / "restarted.log",
        services=("trainer",),
        BENTOML_HOME=str(monitor_work / "bentoml"),
        RETENTION_RETRAIN_EVERY_HOURS="0",
        **MONITOR_ENV,
    ) as restarted:
        wait_for(
            lambda: metric(restarted, "retention_trainer_realized_churn_roc_auc", "default"),
            "the realized gauge restored",
            timeout=60,
        )
        assert (
            metric(restarted, "retention_trainer_realized_churn_roc_auc", "default")
            == (good["roc_auc"])
        )
        time.sleep(QUIET)
        assert outcomes(restarted, API_KEY) == [good]
        assert outcomes(restarted, OTHER_KEY) == [poor]
        assert len([e for e in drift_events(restarted) if e.kind is DriftKind.PERFORMANCE]) == 1
        assert len(runs(restarted, OTHER_KEY)) == 2 and len(runs(restarted, API_KEY)) == 1
