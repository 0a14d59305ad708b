"""The run report on a trained slice: its sections, and every number equal to where it comes from.

The headline and segment numbers are recomputed here from the orders and the bundle (features at
the last order, the bundle's scores); the backtest numbers are the backtest report's; the report
is kept in the bundle and the run store, and its HTML page carries no script or live link.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from retention_bundle.bundle import read_bundle, write_bundle
from retention_bundle.predict import churn_contributions, score
from retention_bundle.report_html import PAGE_CSP, markdown_page
from retention_shared.auth import ApiKeys
from retention_shared.campaigns import plan_campaign
from retention_shared.features import compute_features
from retention_shared.http_errors import install_problem_handlers
from retention_trainer.api import runs as runs_api
from retention_trainer.pipeline import TrainingRun, train_and_backtest
from retention_trainer.run_report import (
    REPORT_CAMPAIGN,
    PreviousChampion,
    RunReport,
    build_run_report,
)
from retention_trainer.run_report_markdown import (
    HEADLINE_LABELS,
    count,
    metric,
    money,
    render_run_report,
)
from retention_trainer.store import RunRecord, RunStatus, RunStore, Trigger
from tests.support.problems import first_problem
from tests.support.uci_orders import TEST_DATA, load_orders

SECTIONS = (
    "## Headline",
    "## Segments",
    "### Revenue at risk by segment",
    "## What drives churn",
    "## Backtest against the baselines",
    "### Reliability",
    "## Changes since the previous champion",
    "## Campaign plan",
)


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    return load_orders(TEST_DATA / "online_retail_II_slice.parquet")


@pytest.fixture(scope="module")
def run(orders: pl.DataFrame) -> TrainingRun:
    return train_and_backtest(
        orders,
        churn_test_cutoff=date(2011, 9, 10),
        ltv_test_cutoff=date(2011, 6, 12),
        rolling_origins=0,
    )


@pytest.fixture(scope="module")
def report(run: TrainingRun, orders: pl.DataFrame) -> RunReport:
    return build_run_report(run, orders)


@pytest.fixture(scope="module")
def scored(run: TrainingRun, orders: pl.DataFrame) -> pl.DataFrame:
    """Every customer at the last order, scored by the run's bundle: the report's population."""
    features = compute_features(orders, orders["occurred_at"].max())
    return score(run.bundle, features).join(
        features.select("customer_id", "orders_90d", "monetary"), on="customer_id"
    )


def row(markdown: str, label: str) -> list[str]:
    """The cells of the table row that starts with `label`."""
    for line in markdown.splitlines():
        if line.startswith(f"| {label} |"):
            return [cell.strip() for cell in line.strip("|").split("|")][1:]
    raise AssertionError(f"no row {label!r}")


def test_the_report_has_every_section_in_order(report: RunReport) -> None:
    positions = [report.markdown.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert "No previous champion to compare with." in report.markdown


def test_headline_numbers_are_the_customers_scored_at_the_last_order(
    report: RunReport, orders: pl.DataFrame, scored: pl.DataFrame, run: TrainingRun
) -> None:
    headline = report.facts["headline"]
    last = orders["occurred_at"].max()
    p, ltv = scored["churn_probability"].to_numpy(), scored["ltv"].to_numpy()
    active = orders.filter(
        pl.col("kind") == "purchase", pl.col("occurred_at") > last - timedelta(days=90)
    )["customer_id"].n_unique()
    assert headline["customers"] == orders["customer_id"].n_unique() == scored.height
    assert headline["active_90d"] == active
    assert headline["at_risk"] == int((p >= 0.60).sum())
    assert headline["revenue_at_risk"] == pytest.approx(float((p * ltv).sum()))
    assert headline["predicted_revenue"] == pytest.approx(float(ltv.sum()))
    assert headline["ltv_horizon_days"] == run.bundle.ltv.horizon_days
    md = report.markdown
    assert row(md, HEADLINE_LABELS["customers"]) == [count(headline["customers"])]
    assert row(md, HEADLINE_LABELS["active_90d"]) == [count(active)]
    assert row(md, HEADLINE_LABELS["at_risk"]) == [count(headline["at_risk"])]
    horizon = f"(next {headline['ltv_horizon_days']} days)"
    assert row(md, f"{HEADLINE_LABELS['revenue_at_risk']} {horizon}") == [
        money(float((p * ltv).sum()))
    ]
    assert row(md, f"{HEADLINE_LABELS['predicted_revenue']} {horizon}") == [money(float(ltv.sum()))]


def test_segments_sum_to_the_headline_and_carry_the_model_actions(
    report: RunReport, run: TrainingRun, scored: pl.DataFrame
) -> None:
    segments = report.facts["segments"]
    actions = dict(zip(run.bundle.segmenter.names, run.bundle.segmenter.actions, strict=True))
    assert {s["segment"]: s["action"] for s in segments} == actions
    sizes = scored.group_by("segment").len()
    assert {s["segment"]: s["customers"] for s in segments if s["customers"]} == dict(
        sizes.iter_rows()
    )
    headline = report.facts["headline"]
    assert sum(s["revenue_at_risk"] for s in segments) == pytest.approx(headline["revenue_at_risk"])
    assert sum(s["predicted_ltv"] for s in segments) == pytest.approx(headline["predicted_revenue"])
    for s in segments:
        cells = row(report.markdown, s["segment"])  # the first table with the segment's row
        assert cells[0] == count(s["customers"]) and cells[3] == money(s["revenue_at_risk"])
        assert cells[-1] == s["action"]


def test_drivers_are_the_largest_mean_absolute_churn_contributions(
    report: RunReport, run: TrainingRun, orders: pl.DataFrame
) -> None:
    features = compute_features(orders, orders["occurred_at"].max())
    names = list(run.bundle.feature_names)
    strength = np.abs(churn_contributions(run.bundle, features).select(names).to_numpy()).mean(0)
    expected = sorted(zip(names, strength, strict=True), key=lambda kv: -kv[1])[:10]
    drivers = report.facts["drivers"]
    assert [d["feature"] for d in drivers] == [name for name, _ in expected]
    assert [d["mean_abs_contribution"] for d in drivers] == pytest.approx([s for _, s in expected])
    assert all(d["meaning"] for d in drivers)
    first = row(report.markdown, "1")
    assert first[0] == drivers[0]["feature"] and first[2] == metric(expected[0][1])


def test_backtest_numbers_are_the_backtest_reports(report: RunReport, run: TrainingRun) -> None:
    for task, keys in (("churn", ("roc_auc", "pr_auc", "brier")), ("ltv", ("spearman", "mae"))):
        section = report.facts["backtest"][task]
        backtest = getattr(run.report, task)
        rows = {"model": backtest.model, **backtest.baselines}
        assert set(section["metrics"]) == set(rows)
        for name, metrics in rows.items():
            for key in keys:
                assert section["metrics"][name][key] == pytest.approx(getattr(metrics, key))
    churn = report.facts["backtest"]["churn"]["metrics"]
    header = next(line for line in report.markdown.splitlines() if "| roc_auc |" in line)
    column = [c.strip() for c in header.strip("|").split("|")].index("roc_auc") - 1
    assert row(report.markdown, "**model**")[column] == metric(churn["model"]["roc_auc"])
    for name in ("recency", "rfm_logistic", "bgnbd"):
        assert row(report.markdown, name)[column] == metric(churn[name]["roc_auc"])


def test_reliability_bins_hold_every_churn_test_customer(
    report: RunReport, run: TrainingRun
) -> None:
    bins = report.facts["reliability"]
    customers = np.array([b["customers"] for b in bins])
    assert customers.sum() == run.report.churn.test_customers
    observed = np.array([b["observed"] for b in bins])
    predicted = np.array([b["mean_predicted"] for b in bins])
    assert (observed * customers).sum() / customers.sum() == pytest.approx(
        run.report.churn.churn_rate
    )
    assert (predicted * customers).sum() / customers.sum() == pytest.approx(
        run.churn_predictions["churn_probability"].mean()
    )
    assert all(b["low"] <= b["mean_predicted"] <= b["high"] for b in bins)


def test_the_campaign_is_the_shared_plan_for_the_default_budget(
    report: RunReport, scored: pl.DataFrame
) -> None:
    plan = plan_campaign(
        scored["churn_probability"].to_numpy(), scored["ltv"].to_numpy(), REPORT_CAMPAIGN
    )
    campaign = report.facts["campaign"]
    assert campaign["contacts"] == len(plan.selected) > 0
    assert campaign["candidates"] == scored.height
    assert sum(s["contacts"] for s in campaign["by_segment"]) == len(plan.selected)
    assert campaign["expected"]["net_profit"] == pytest.approx(plan.expected.net_profit)
    assert row(report.markdown, "expected")[3] == money(plan.expected.net_profit)


def test_changes_compare_with_the_champion_report(
    run: TrainingRun, orders: pl.DataFrame, tmp_path: Path
) -> None:
    first = build_run_report(run, orders)
    # The champion as the next run reads it: from its bundle's files.
    stored = dataclasses.replace(
        run.bundle, run_report=first.markdown, run_report_facts=first.facts
    )
    write_bundle(stored, tmp_path)
    champion = read_bundle(tmp_path)
    gate = {"promote": False, "reason": "no better than the champion", "candidate": {}}
    again = build_run_report(
        run, orders, previous=PreviousChampion.of("retention-uci:v1", champion), gate=gate
    )
    changes = again.facts["changes"]
    assert changes["champion_tag"] == "retention-uci:v1"
    assert all(d["change"] == 0 for d in changes["headline"].values())
    assert changes["metrics"]["churn roc_auc"]["champion"] == run.report.churn.model.roc_auc
    assert all(s["change"] == 0 for s in changes["segments"])
    assert "Gate: keep the champion — no better than the champion." in again.markdown
    unreadable = build_run_report(
        run, orders, previous=PreviousChampion("retention-uci:v0", None, {})
    )
    assert "its bundle could not be read" in unreadable.markdown


def test_the_bundle_keeps_the_report_and_reads_bundles_without_one(
    run: TrainingRun, report: RunReport, tmp_path: Path
) -> None:
    with_report = dataclasses.replace(
        run.bundle, run_report=report.markdown, run_report_facts=report.facts
    )
    write_bundle(with_report, tmp_path / "new")
    back = read_bundle(tmp_path / "new")
    assert back.run_report == report.markdown
    assert back.run_report_facts["headline"] == report.facts["headline"]
    assert "<table>" in (tmp_path / "new" / "run_report.html").read_text()
    write_bundle(run.bundle, tmp_path / "old")  # as bundles were written before run reports
    assert not (tmp_path / "old" / "run_report.md").exists()
    old = read_bundle(tmp_path / "old")
    assert old.run_report == "" and old.run_report_facts == {}


def test_the_html_page_shows_hostile_names_as_text(report: RunReport) -> None:
    facts = {
        **report.facts,
        "tenant": "<script>alert(1)</script>",
        "segments": [
            {**s, "segment": "[win](javascript:alert(1)) ![x](http://evil/x.png) *a|b*"}
            for s in report.facts["segments"]
        ],
    }
    page = markdown_page(render_run_report(facts), "<title>")
    assert "<script" not in page and "<a " not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "[win](javascript:alert(1))" in page  # as text, the cell not split at the pipe
    assert "*a|b*" in page
    assert "<title>&lt;title&gt;</title>" in page


def test_the_route_serves_trained_runs_and_refuses_the_others(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    app = FastAPI()
    app.include_router(runs_api.router)
    install_problem_handlers(app)  # as every service app does: errors are problems
    app.state.api_keys = ApiKeys.parse("k1:acme:read,k2:other:read")
    app.state.runs = SimpleNamespace(store=store)
    now = datetime.now(UTC)

    def add(run_id: str, status: RunStatus, run_report: str | None) -> None:
        store.add(RunRecord(run_id, "acme", status, [Trigger("request")], {}, now))
        record = store.get(run_id)
        assert record is not None
        record.run_report = run_report
        store.save(record)

    add("done", RunStatus.PUBLISHED, "# Run report: acme\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n")
    add("skipped", RunStatus.SKIPPED, None)
    add("failed", RunStatus.FAILED, "# written before the publish failed\n")
    add("old", RunStatus.REJECTED, None)
    client = TestClient(app)
    acme = {"Authorization": "Bearer k1"}
    md = client.get("/v1/runs/done/report", headers=acme)
    assert md.status_code == 200 and md.headers["content-type"] == "text/markdown; charset=utf-8"
    assert md.text.startswith("# Run report: acme")
    page = client.get("/v1/runs/done/report?format=html", headers=acme)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == PAGE_CSP and "<table>" in page.text
    for run_id in ("skipped", "failed", "old"):
        refused = client.get(f"/v1/runs/{run_id}/report", headers=acme)
        assert refused.status_code == 409 and first_problem(refused)[0] == "run_id"
    assert "before run reports existed" in client.get("/v1/runs/old/report", headers=acme).text
    for run_id, key in (("nope", "k1"), ("done", "k2")):
        missing = client.get(
            f"/v1/runs/{run_id}/report", headers={"Authorization": f"Bearer {key}"}
        )
        assert missing.status_code == 404 and first_problem(missing)[0] == "run_id"
    assert client.get("/v1/runs/done/report?format=pdf", headers=acme).status_code == 422
    store.close()


def test_a_run_store_from_before_run_reports_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE, "
        "tenant_id TEXT NOT NULL, status TEXT NOT NULL, triggers TEXT NOT NULL, options TEXT NOT "
        "NULL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, message TEXT, "
        "model_tag TEXT, timings TEXT NOT NULL, data TEXT, gate TEXT, report TEXT, markdown TEXT)"
    )
    db.execute(
        "INSERT INTO runs (run_id, tenant_id, status, triggers, options, created_at, timings) "
        "VALUES ('r1', 'acme', 'published', '[]', '{}', '2026-01-01T00:00:00+00:00', '{}')"
    )
    db.commit()
    db.close()
    store = RunStore(path)
    old = store.get("r1")
    assert old is not None and old.run_report is None
    old.run_report = "# report\n"
    store.save(old)
    assert store.get("r1").run_report == "# report\n"  # type: ignore[union-attr]
    store.close()
