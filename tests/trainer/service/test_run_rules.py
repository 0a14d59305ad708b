"""The trainer service's rules without a broker: gate, history check, schedule, run store, and
the events-to-lake-columns conversion on real orders."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from retention_ingest.file_ingest import ingest_file
from retention_ingest.order_events import order_event_payloads
from retention_shared.config import Settings
from retention_shared.event_columns import EventColumns, order_event_frame
from retention_shared.events import OrderEvent, decode_events
from retention_shared.order_decoder import read_order_event
from retention_trainer.gate import GateMetrics, decide
from retention_trainer.runs.history import history_shortfall
from retention_trainer.schedule import due_tenants
from retention_trainer.store import ChampionRecord, RunRecord, RunStatus, RunStore, Trigger
from tests.support.uci_orders import TEST_DATA, load_orders

CHAMPION = GateMetrics(roc_auc=0.80, spearman=0.60)


@pytest.mark.parametrize(
    ("candidate", "promote", "reason"),
    [
        (GateMetrics(0.81, 0.60), True, "better than the champion on churn ROC-AUC ("),
        (GateMetrics(0.80, 0.61), True, "better than the champion on LTV Spearman ("),
        (GateMetrics(0.81, 0.59), False, "worse than the champion on LTV Spearman ("),
        (GateMetrics(0.79, 0.59), False, "worse than the champion on churn ROC-AUC and LTV"),
        (GateMetrics(0.80, 0.60), False, "no better than the champion ("),
        (GateMetrics(math.nan, 0.70), False, "worse than the champion on churn ROC-AUC ("),
    ],
)
def test_the_gate_promotes_only_a_candidate_not_worse_on_both_and_better_on_one(
    candidate: GateMetrics, promote: bool, reason: str
) -> None:
    decision = decide(candidate, CHAMPION)
    assert decision.promote is promote
    assert decision.reason.startswith(reason)
    assert decision.as_dict()["champion"] == {"roc_auc": 0.80, "spearman": 0.60}


def test_without_a_champion_the_candidate_is_promoted() -> None:
    decision = decide(GateMetrics(0.5, 0.0), None)
    assert decision.promote and decision.reason == "no champion yet"


def test_history_check_on_real_orders() -> None:
    orders = load_orders(TEST_DATA / "online_retail_II_slice.parquet")
    settings = Settings(api_keys="")
    assert history_shortfall(orders, settings) is None
    short = orders.filter(pl.col("occurred_at") < datetime(2010, 2, 1, tzinfo=UTC))
    reason = history_shortfall(short, settings)
    assert reason is not None and reason.startswith("too little history: ")
    assert "RETENTION_MIN_TRAINING_CUSTOMERS" in reason
    assert "RETENTION_MIN_TRAINING_HISTORY_DAYS" in reason
    assert history_shortfall(orders.head(0), settings) == "no orders in the lake for this tenant"
    strict = Settings(api_keys="", min_training_customers=10_000)
    assert "RETENTION_MIN_TRAINING_HISTORY_DAYS" not in (history_shortfall(orders, strict) or "")


def test_a_tenant_is_due_an_interval_after_its_latest_run() -> None:
    now = datetime(2024, 1, 2, tzinfo=UTC)
    last = {"a": now - timedelta(hours=25), "b": now - timedelta(hours=1)}
    assert due_tenants(["a", "b", "c"], last, now, timedelta(hours=24)) == ["a", "c"]


def _record(run_id: str, tenant: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        tenant_id=tenant,
        status=RunStatus.QUEUED,
        triggers=[Trigger("request", "by hand")],
        options={"cutoff_every_days": 60},
        created_at=datetime.now(UTC),
    )


def test_run_records_and_the_champion_survive_reopening_the_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    first, second, other = _record("r1", "acme"), _record("r2", "acme"), _record("r3", "globex")
    for record in (first, second, other):
        store.add(record)
    first.status, first.model_tag = RunStatus.PUBLISHED, "retention-acme:v1"
    first.report = {"churn": {"model": {"roc_auc": 0.8, "f1": math.nan}}}
    first.markdown = "# Backtest\n"
    champion = ChampionRecord(
        "acme", "retention-acme:v1", "r1", {"roc_auc": 0.8}, datetime.now(UTC)
    )
    store.save(first, champion)
    second.status = RunStatus.RUNNING
    store.save(second)
    store.close()

    reopened = RunStore(path)
    assert [r.run_id for r in reopened.list("acme")] == ["r2", "r1"]  # newest first
    assert [r.run_id for r in reopened.list("globex")] == ["r3"]
    loaded = reopened.get("r1")
    assert loaded is not None and loaded.status is RunStatus.PUBLISHED
    assert loaded.report == {"churn": {"model": {"roc_auc": 0.8, "f1": None}}}  # NaN as null
    assert loaded.triggers == first.triggers and loaded.options == {"cutoff_every_days": 60}
    assert reopened.champion("acme") == champion and reopened.champion("globex") is None
    assert [r.run_id for r in reopened.unfinished()] == ["r2", "r3"]
    assert set(reopened.last_run_at()) == {"acme", "globex"}


def test_decoded_events_become_the_lake_columns_ingest_made(tmp_path: Path) -> None:
    result = ingest_file(
        TEST_DATA / "online_retail_slice.parquet", tenant_id="acme", source="t", work_dir=tmp_path
    )
    events = result.events().collect()
    payloads = order_event_payloads(events)
    decoded = decode_events(OrderEvent, payloads)
    assert_frame_equal(order_event_frame(decoded), events)
    # The compiled reader's structs (the lake consumer's fast path) give the very same columns.
    columns = EventColumns()
    for payload in payloads:
        read = read_order_event(payload)
        assert read is not None
        columns.add(*read)
    assert len(columns) == events.height and columns.tenants == {"acme"}
    assert_frame_equal(columns.frame(), events)
    assert_frame_equal(EventColumns().frame(), events.clear())


def test_run_pages_go_newest_first_and_later_runs_do_not_shift_them(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    for number in range(5):
        store.add(_record(f"r{number}", "acme"))
        store.add(_record(f"g{number}", "globex"))
    first = store.page("acme", 2)
    assert [record.run_id for _, record in first] == ["r4", "r3"]
    store.add(_record("r5", "acme"))  # a new run lands on the first page, not the next
    second = store.page("acme", 2, before=first[-1][0])
    third = store.page("acme", 2, before=second[-1][0])
    assert [record.run_id for _, record in second + third] == ["r2", "r1", "r0"]
    assert store.page("acme", 2, before=third[-1][0]) == []
    assert [r.run_id for r in store.list("acme", 3)] == ["r5", "r4", "r3"]
