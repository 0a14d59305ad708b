"""The trainer service as a process on the real broker, fed by the ingest service.

Upload → `transactions` → lake → a run → bundle in a temporary BentoML store → `ModelPublished`
on `model-events`; then a genuinely worse run (sparser training cutoffs) is rejected by the gate,
triggers during a run coalesce, too little history is a skipped run, tenants stay apart and
redelivered transactions are stored once.

The tests share one stack (for speed) but not an order: what one needs — the default tenant's
published champion, the other tenant's skipped run — is a module fixture made the first time
any test asks for it, and the restart test leaves the stack's trainer running again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from retention_bundle.bundle import read_bundle
from retention_cli.stack import Stack
from retention_ingest.file_ingest import ingest_file
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import (
    DriftDetected,
    ModelEvent,
    ModelPublished,
    ModelRejected,
    RejectedRecord,
    TimeWindow,
    decode_event,
)
from retention_shared.features import orders_from_event_columns
from retention_shared.topics import Topics
from tests.support.features_service import read_to_end
from tests.support.kafka_reading import read_until
from tests.support.metrics_catalog import documented_metrics
from tests.support.problems import first_problem
from tests.support.real_orders import publish
from tests.support.stack import API_KEY, auth, stack_of_its_own, upload_file, url
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow

SLICE = TEST_DATA / "online_retail_II_slice.parquet"
SMALL_SLICE = TEST_DATA / "online_retail_slice.parquet"
OTHER = "e2e-other"
FINISHED = {"published", "rejected", "skipped", "failed"}
OUTCOME_GAUGES = {
    "retention_trainer_realized_churn_roc_auc",
    "retention_trainer_realized_churn_brier",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trainer-service")


@pytest.fixture(scope="module")
def stack(kafka: EmbeddedBroker, work: Path) -> Iterator[Stack]:
    with stack_of_its_own(kafka, work, "trainer", services=("ingest", "trainer")) as running:
        yield running


@pytest.fixture(scope="module")
def expected_orders(work: Path) -> pl.DataFrame:
    """The slice's orders as ingest's own cleaning makes them (what the lake should hold)."""
    result = ingest_file(SLICE, tenant_id="default", source="expected", work_dir=work / "expected")
    return orders_from_event_columns(result.events().collect())


@pytest.fixture(scope="module")
def published(stack: Stack) -> tuple[dict, str]:
    """The default tenant's champion: the slice uploaded, the run its upload triggered (the
    module's first run), and the trainer's metrics once its `ModelPublished` is on the topic
    (taken here: a later test may restart the trainer, which starts its counters again)."""
    upload(stack, SLICE)
    run = wait_for_run(
        stack, lambda found: next((r for r in found if r["triggers"][0]["kind"] == "upload"), None)
    )
    model_events(stack, lambda got: any(isinstance(e, ModelPublished) for e in got))
    return run, metric_samples(stack)


@pytest.fixture(scope="module")
def other_skipped(stack: Stack, work: Path) -> dict:
    """The other tenant's only run: 500 rows uploaded, too little history to train on."""
    first_rows = work / "first-500-rows.parquet"
    pl.read_parquet(SMALL_SLICE).head(500).write_parquet(first_rows)
    upload(stack, first_rows, key=OTHER)
    return wait_for_run(stack, lambda found: found[0] if found else None, key=OTHER)


def topics(stack: Stack) -> Topics:
    return Topics.with_prefix(stack.settings.topic_prefix)


def headers(key: str | None = None) -> dict[str, str]:
    return auth(key or API_KEY)


def upload(stack: Stack, path: Path, key: str | None = None) -> str:
    """Upload a file through ingest and wait until all its orders are on `transactions`."""
    return upload_file(stack, path, key or API_KEY, timeout=60)["upload_id"]


def runs(stack: Stack, key: str | None = None) -> list[dict]:
    response = httpx.get(f"{url(stack, 'trainer')}/v1/runs", headers=headers(key))
    assert response.status_code == 200, response.text
    return response.json()["runs"]


def run_detail(stack: Stack, run_id: str, key: str | None = None) -> httpx.Response:
    return httpx.get(f"{url(stack, 'trainer')}/v1/runs/{run_id}", headers=headers(key))


def wait_for_run(stack: Stack, find, key: str | None = None, timeout: float = 90) -> dict:
    """The first run `find(runs)` returns once it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find(runs(stack, key))
        if found is not None and found["status"] in FINISHED:
            return run_detail(stack, found["run_id"], key).json()
        time.sleep(0.3)
    raise TimeoutError(f"no finished run; runs: {runs(stack, key)}")


def by_id(run_id: str):
    return lambda found: next((r for r in found if r["run_id"] == run_id), None)


def retrain(stack: Stack, body: dict | None = None, key: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{url(stack, 'trainer')}/v1/retrain",
        json=body,
        headers=headers(key),
    )


def model_events(stack: Stack, done) -> list:
    records = asyncio.run(
        read_until(
            stack.settings,
            topics(stack).model_events,
            lambda got: done([decode_event(ModelEvent, r.value) for r in got]),
            timeout=30,
        )
    )
    return [decode_event(ModelEvent, r.value) for r in records]


def metric_samples(stack: Stack) -> str:
    return httpx.get(f"{url(stack, 'trainer')}/metrics").text


def sample(exposition: str, name: str, **labels: str) -> float | None:
    for line in exposition.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_an_upload_reaches_the_lake_trains_and_publishes_a_champion(
    stack: Stack, work: Path, expected_orders: pl.DataFrame, published: tuple[dict, str]
) -> None:
    run, exposition = published
    assert run["status"] == "published", run["message"]
    # The run waited for the whole upload to be in the lake before reading it.
    assert run["data"]["orders"] == expected_orders.height
    assert run["data"]["customers"] == expected_orders["customer_id"].n_unique()
    assert run["gate"]["champion"] is None and run["gate"]["promote"]
    assert {
        "lake_wait",
        "lake_read",
        "training_sets",
        "churn",
        "ltv",
        "gate",
        "refit",
        "publish",
    } <= set(run["timings"])
    report = run["report"]
    assert report["churn"]["model"]["roc_auc"] > 0.8
    assert report["windows"]["churn"]["test_cutoff"] == "2011-09-10"
    assert "| **model** |" in run["markdown"]

    lake = httpx.get(f"{url(stack, 'trainer')}/v1/lake", headers=headers()).json()
    assert lake["orders"] == expected_orders.height and lake["bytes"] > 0

    name, version = run["model_tag"].split(":")
    bundle = read_bundle(work / "bentoml" / "models" / name / version)
    assert bundle.tenant == "default"
    assert bundle.report.churn.model.roc_auc == pytest.approx(report["churn"]["model"]["roc_auc"])
    # What is stored and served is the refit on the latest complete labels (data end − horizon),
    # carrying the held-out report the gate decided on.
    assert bundle.report.as_json() == report
    data_end = expected_orders["occurred_at"].max().date()
    assert bundle.production is not None and bundle.production.refitted
    assert bundle.production.data_end == data_end
    for task in ("churn", "ltv"):
        window = getattr(bundle.production, task)
        assert window.training_cutoffs[-1] == data_end - timedelta(days=window.horizon_days)
    assert run["production"] == bundle.production.model_dump(mode="json")

    events = model_events(stack, lambda got: any(isinstance(e, ModelPublished) for e in got))
    published = [e for e in events if isinstance(e, ModelPublished)]
    assert len(published) == 1
    event = published[0]
    assert (event.tenant_id, event.model_tag, event.run_id) == (
        "default",
        run["model_tag"],
        run["run_id"],
    )
    assert event.model_version == version
    assert event.metrics["roc_auc"] == pytest.approx(report["churn"]["model"]["roc_auc"])
    assert event.metrics["spearman"] == pytest.approx(report["ltv"]["model"]["spearman"])
    assert event.training_window.start == expected_orders["occurred_at"].min()
    assert event.training_window.end == expected_orders["occurred_at"].max()

    assert sample(exposition, "retention_trainer_runs_total", outcome="published") == 1
    assert sample(
        exposition, "retention_trainer_champion_metric", tenant="default", metric="roc_auc"
    ) == pytest.approx(report["churn"]["model"]["roc_auc"])
    assert sample(exposition, "retention_trainer_last_success_timestamp_seconds") > 0
    assert sample(exposition, "retention_trainer_stage_duration_seconds_count", stage="gate") >= 1


def test_a_worse_candidate_is_rejected_and_the_champion_stays(
    stack: Stack, work: Path, published: tuple[dict, str]
) -> None:
    champion = published[0]
    # Training cutoffs every 90 days instead of 30: far fewer training examples.
    response = retrain(stack, {"cutoff_every_days": 90, "reason": "sparser cutoffs"})
    assert response.status_code == 202, response.text
    assert response.json()["options"] == {"cutoff_every_days": 90}
    run = wait_for_run(stack, by_id(response.json()["run_id"]))
    assert run["status"] == "rejected", run["message"]
    gate = run["gate"]
    assert gate["champion_tag"] == champion["model_tag"]
    assert gate["candidate"]["roc_auc"] < gate["champion"]["roc_auc"]
    assert gate["candidate"]["spearman"] < gate["champion"]["spearman"]
    # The champion's numbers are its own backtest: same data, same test set.
    champion_report = run_detail(stack, champion["run_id"]).json()["report"]
    assert gate["champion"]["roc_auc"] == pytest.approx(
        champion_report["churn"]["model"]["roc_auc"]
    )
    assert len(run["report"]["windows"]["churn"]["training_cutoffs"]) < len(
        champion_report["windows"]["churn"]["training_cutoffs"]
    )

    # Other tests' runs may have been rejected before this one: this run's event, once.
    def this_run(events: list) -> list[ModelRejected]:
        return [e for e in events if isinstance(e, ModelRejected) and e.run_id == run["run_id"]]

    rejected = this_run(model_events(stack, lambda got: bool(this_run(got))))
    assert len(rejected) == 1
    assert rejected[0].candidate_metrics == pytest.approx(gate["candidate"])
    assert rejected[0].champion_metrics == pytest.approx(gate["champion"])
    assert rejected[0].champion_version == champion["model_tag"].split(":")[1]
    # Only the champion is in the model store.
    assert len(list((work / "bentoml" / "models" / "retention-default").glob("*/bundle.json"))) == 1


def test_triggers_during_a_run_coalesce_into_one_follow_up(
    stack: Stack, published: tuple[dict, str]
) -> None:
    before = {r["run_id"] for r in runs(stack)}
    first = retrain(stack)  # no body: the defaults
    assert first.status_code == 202, first.text
    # During that run: two requests over HTTP and a drift event on its topic.
    answers = [retrain(stack, {"reason": f"request {i}"}) for i in (1, 2)]
    drift = DriftDetected(
        tenant_id="default",
        model_version="v1",
        psi={"recency_days": 0.31, "monetary": 0.05},
        threshold=0.2,
        window=TimeWindow(start=datetime(2011, 12, 1, tzinfo=UTC), end=datetime.now(UTC)),
    )
    asyncio.run(
        publish(stack.settings, topics(stack).drift_events, [(b"default", drift.to_bytes())])
    )
    ids = [first.json()["run_id"]] + [a.json()["run_id"] for a in answers]
    assert ids[0] != ids[1] and ids[1] == ids[2]
    done = wait_for_run(stack, by_id(ids[0]))
    follow_up = wait_for_run(stack, by_id(ids[1]))
    assert sorted((t["kind"], t["detail"]) for t in follow_up["triggers"]) == [
        ("drift", "model v1: PSI over 0.2 for recency_days 0.31"),
        ("request", "request 1"),
        ("request", "request 2"),
    ]
    assert follow_up["started_at"] >= done["finished_at"]
    # The same data again: a tie with the champion, which stays.
    assert {done["status"], follow_up["status"]} == {"rejected"}
    assert {r["run_id"] for r in runs(stack)} - before == {ids[0], ids[1]}


def test_too_little_history_is_a_skipped_run_without_a_model(
    work: Path, other_skipped: dict
) -> None:
    run = other_skipped
    assert run["status"] == "skipped"
    assert run["message"].startswith("too little history")
    assert "RETENTION_MIN_TRAINING_CUSTOMERS" in run["message"]
    assert "RETENTION_MIN_TRAINING_HISTORY_DAYS" in run["message"]
    assert run["model_tag"] is None and run["report"] is None
    assert not (work / "bentoml" / "models" / "retention-other").exists()


def test_runs_and_the_lake_are_per_tenant(
    stack: Stack, published: tuple[dict, str], other_skipped: dict
) -> None:
    mine, theirs = runs(stack), runs(stack, OTHER)
    assert mine and theirs
    assert {r["tenant_id"] for r in mine} == {"default"}
    assert {r["tenant_id"] for r in theirs} == {"other"}
    assert [r["created_at"] for r in mine] == sorted((r["created_at"] for r in mine), reverse=True)

    foreign = run_detail(stack, mine[0]["run_id"], OTHER)
    unknown = run_detail(stack, "no-such-run", OTHER)
    assert foreign.status_code == unknown.status_code == 404
    assert first_problem(foreign)[0] == first_problem(unknown)[0] == "run_id"
    assert foreign.text.replace(mine[0]["run_id"], "X") == unknown.text.replace("no-such-run", "X")

    lake = httpx.get(f"{url(stack, 'trainer')}/v1/lake", headers=headers(OTHER)).json()
    assert lake["tenant_id"] == "other" and 0 < lake["orders"] < 500

    bad = retrain(stack, {"cutoff_every_days": 0})
    assert bad.status_code == 422
    assert first_problem(bad)[0] == "cutoff_every_days"
    unknown_field = retrain(stack, {"cutof_every_days": 60})
    assert unknown_field.status_code == 422
    assert first_problem(unknown_field)[0] == "cutof_every_days"
    assert httpx.post(f"{url(stack, 'trainer')}/v1/retrain").status_code == 401


def test_redelivered_transactions_are_stored_once_and_bad_records_are_rejected(
    stack: Stack, published: tuple[dict, str], other_skipped: dict
) -> None:
    names = topics(stack)
    lakes = {
        key: httpx.get(f"{url(stack, 'trainer')}/v1/lake", headers=headers(key)).json()
        for key in (None, OTHER)
    }
    assert all(lake["orders"] > 0 for lake in lakes.values())
    records = asyncio.run(read_to_end(stack.settings, names.transactions))

    def consumed(outcome: str) -> float:
        # Counted since the trainer process started (the restart test starts a new one).
        found = sample(
            metric_samples(stack),
            "retention_messages_total",
            topic=names.transactions,
            direction="consumed",
            outcome=outcome,
        )
        return found or 0.0

    ok_before, rejected_before = consumed("ok"), consumed("rejected")
    # Everything again (as after a producer retry or a replay), plus one record no one can read.
    again = [(r.key, r.value) for r in records] + [(b"default:x", b"{not json")]
    asyncio.run(publish(stack.settings, names.transactions, again))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if consumed("ok") == ok_before + len(records) and consumed("rejected") > rejected_before:
            break
        time.sleep(0.3)
    else:
        raise TimeoutError("the trainer did not consume the redelivered records")
    for key, before in lakes.items():
        now = httpx.get(f"{url(stack, 'trainer')}/v1/lake", headers=headers(key)).json()
        assert (now["orders"], now["customers"]) == (before["orders"], before["customers"])

    rejected = asyncio.run(
        read_until(stack.settings, names.transactions_rejected, lambda got: len(got) >= 1)
    )
    reasons = [decode_event(RejectedRecord, r.value) for r in rejected]
    assert [(r.source, r.reasons[0].code) for r in reasons] == [(names.transactions, "not_json")]


def test_the_metrics_are_the_documented_ones(stack: Stack, published: tuple[dict, str]) -> None:
    documented = {
        name: metric.type
        for name, metric in documented_metrics().items()
        if metric.service in ("all", "trainer")
    }
    exported = dict(
        re.findall(r"^# TYPE (retention_\w+) (\w+)$", metric_samples(stack), re.MULTILINE)
    )
    assert exported == documented
    for name, metric in documented_metrics().items():
        # The realized gauges have a sample only once a champion's horizon has passed; their
        # labels are checked in test_outcome_monitor.py.
        if metric.service == "trainer" and metric.labels and name not in OUTCOME_GAUGES:
            line = next(
                line
                for line in metric_samples(stack).splitlines()
                if line.startswith(name) and "{" in line
            )
            assert set(re.findall(r'(\w+)="', line)) - {"le"} == set(metric.labels), line


def start_again(stack: Stack, name: str) -> None:
    """Start a service of the stack that was stopped on request (which its supervisor leaves
    down) on its own port and data, and wait until it is ready."""
    service = next(s for s in stack.running if s.name == name)
    stopped = service.process
    # Due now first, then not staying down: the supervisor never sees it due to stay down.
    service.restart_at = time.monotonic()
    service.stays_down = False
    deadline = time.monotonic() + 30
    while service.process is stopped:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the supervisor did not start {name} again")
        time.sleep(0.2)
    stack.wait_ready(180)


def test_run_records_the_champion_and_the_lake_survive_a_restart(
    stack: Stack, published: tuple[dict, str]
) -> None:
    """The module's trainer is stopped during a run and a new one (on the same data and port)
    takes over; it stays the stack's trainer for the tests after this one."""
    champion = published[0]
    before = {r["run_id"]: r for r in runs(stack)}
    lake = httpx.get(f"{url(stack, 'trainer')}/v1/lake", headers=headers()).json()
    interrupted = retrain(stack, {"reason": "interrupted"}).json()["run_id"]
    trainer = next(service for service in stack.running if service.name == "trainer")
    trainer.process.terminate()
    trainer.process.wait(30)

    start_again(stack, "trainer")
    resumed = wait_for_run(stack, by_id(interrupted))
    assert resumed["status"] == "rejected", resumed["message"]  # same data: a tie
    assert resumed["message"].startswith("no better than the champion")
    after = {r["run_id"]: r for r in runs(stack)}
    assert set(after) == set(before) | {interrupted}
    for run_id, run in before.items():
        assert after[run_id]["status"] == run["status"]
    again = httpx.get(f"{url(stack, 'trainer')}/v1/lake", headers=headers()).json()
    assert (again["orders"], again["customers"]) == (lake["orders"], lake["customers"])
    assert resumed["gate"]["champion_tag"] == champion["model_tag"]
    assert sample(
        metric_samples(stack), "retention_trainer_champion_metric", metric="spearman"
    ) == pytest.approx(champion["gate"]["candidate"]["spearman"])
