"""`retention backtest` on a real export: the report's JSON shape, and the churn quality bar."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from retention_bundle.backtest_report import BacktestReport
from retention_cli.main import main
from retention_trainer.evaluation.backtest import render_markdown
from retention_trainer.evaluation.metrics import CHURN_METRIC_KEYS, LTV_METRIC_KEYS
from tests.support.real_orders import ONLINE_RETAIL
from tests.support.uci_orders import TEST_DATA

SLICE_II = TEST_DATA / "online_retail_II_slice.parquet"

pytestmark = pytest.mark.slow


def backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retention_cli.main", "backtest", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_online_retail_beats_every_churn_baseline_through_the_cli(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = backtest("--data", str(ONLINE_RETAIL), "--json", "--report", str(page))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    churn, ltv = report["churn"], report["ltv"]
    assert set(CHURN_METRIC_KEYS) <= set(churn["model"])
    assert set(LTV_METRIC_KEYS) <= set(ltv["model"])
    assert {"recency", "rfm_logistic", "bgnbd"} <= set(churn["baselines"])
    assert {"past_spend_scaled", "bgnbd_gamma_gamma"} <= set(ltv["baselines"])
    assert report["windows"]["churn"]["test_cutoff"] == "2011-09-10"
    assert churn["model"]["roc_auc"] >= 0.74
    assert all(churn["model"]["roc_auc"] > b["roc_auc"] for b in churn["baselines"].values())
    assert report["segments"] and all("action" in s for s in report["segments"])
    # One year cannot hold a 180-day LTV backtest: the command says so and uses 90 days.
    assert report["windows"]["ltv"]["horizon_days"] == 90
    assert "180-day horizon" in report["notes"][0] and "180-day horizon" in result.stderr
    # One year holds three 30-day-apart origins of each task; each metric has its interval.
    rolling = report["rolling"]
    assert rolling["origins"]["churn"] == ["2011-09-10", "2011-08-11", "2011-07-12"]
    assert set(rolling["metrics"]["churn"]["roc_auc"]["baselines"]) == set(churn["baselines"])
    assert "recent_spend" in ltv["baselines"]
    # LTV (measured: rolling Spearman 0.526 against BG/NBD + Gamma-Gamma's 0.503, interval
    # [+0.018, +0.028]; test MAE 542 against 568): it ranks better than every baseline over the
    # origins and sizes no worse than BG/NBD + Gamma-Gamma at the test cutoff.
    spearman = rolling["metrics"]["ltv"]["spearman"]
    assert spearman["verdict"] == "better" and spearman["diff_interval_90"][0] > 0
    assert ltv["model"]["mae"] <= ltv["baselines"]["bgnbd_gamma_gamma"]["mae"]
    # The 80% interval's coverage and width, at the test cutoff and at every origin. One year of
    # history has no season to learn from: 0.72 at the test cutoff, under the 0.77 the issue asks.
    intervals = rolling["ltv_interval"]
    assert intervals["coverage_80_by_origin"][0] == ltv["interval_coverage_80"]
    assert len(intervals["median_width_by_origin"]) == 3
    # No cutoff a year before the test cutoff: no seasonal level (1, the default, left out).
    assert ltv["stack"].get("level", 1.0) == 1.0 and "level_cutoff" not in ltv["stack"]
    # The same run's report for managers, as a page: its backtest is this report's.
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<script" not in html
    assert "<h2>Headline</h2>" in html and "<h2>Campaign plan</h2>" in html
    assert f"<td>{churn['model']['roc_auc']:.3f}</td>" in html.replace(
        ' style="text-align:right"', ""
    )


def test_a_report_file_must_be_markdown_or_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: the command line is refused before any file is read.
    with pytest.raises(SystemExit) as refused:
        main(["backtest", "--data", str(ONLINE_RETAIL), "--report", str(tmp_path / "r.pdf")])
    assert refused.value.code == 2 and "a .md or .html file" in capsys.readouterr().err


def test_a_mapping_naming_a_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "customer_id": "Client",
                "order_id": "InvoiceNo",
                "order_datetime": "InvoiceDate",
                "product_id": "StockCode",
                "quantity": "Quantity",
                "unit_price": "UnitPrice",
            }
        )
    )
    result = backtest("--data", str(ONLINE_RETAIL), "--mapping", str(mapping))
    assert result.returncode == 2
    assert "missing_column" in result.stderr and "'Client'" in result.stderr


@pytest.fixture(scope="module")
def slice_report() -> dict[str, Any]:
    """One in-process `--json` run on the Online Retail II slice (two years: four origins of both
    tasks), shared by the tests that read its report."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["backtest", "--data", str(SLICE_II), "--json"]) == 0
    return json.loads(out.getvalue())


def test_the_json_keeps_its_keys_and_adds_the_rolling_block(slice_report: dict[str, Any]) -> None:
    report = slice_report
    assert {"tenant", "churn", "ltv", "segments", "rolling_origin", "windows", "timings"} <= set(
        report
    )
    assert set(CHURN_METRIC_KEYS) <= set(report["churn"]["model"])
    assert set(LTV_METRIC_KEYS) <= set(report["ltv"]["model"])
    rolling = report["rolling"]
    assert rolling["resamples"] >= 1000 and isinstance(rolling["seed"], int)
    for task, keys in (("churn", CHURN_METRIC_KEYS), ("ltv", LTV_METRIC_KEYS)):
        origins = [date.fromisoformat(d) for d in rolling["origins"][task]]
        assert (
            len(origins) == 4 and origins[0].isoformat() == report["windows"][task]["test_cutoff"]
        )
        assert all(a - b == timedelta(days=30) for a, b in pairwise(origins))
        for key in keys:
            entry = rolling["metrics"][task][key]
            assert set(entry["baselines"]) == set(report[task]["baselines"])
            assert entry["best_baseline"] in entry["baselines"]
            low, high = entry["diff_interval_90"]
            assert low <= high
            assert {"model_mean", "diff_mean", "verdict"} <= set(entry)
    assert "recent_spend" in rolling["metrics"]["ltv"]["spearman"]["baselines"]


def test_the_json_adds_the_production_refit_windows(slice_report: dict[str, Any]) -> None:
    # The model a promoted trainer run would serve: last training cutoff = data end − horizon.
    production = slice_report["production"]
    assert production["refitted"]
    end = date.fromisoformat(production["data_end"])
    for task in ("churn", "ltv"):
        window = production[task]
        assert window["horizon_days"] == slice_report["windows"][task]["horizon_days"]
        last = date.fromisoformat(window["training_cutoffs"][-1])
        assert last == end - timedelta(days=window["horizon_days"])
        held_out = slice_report["windows"][task]["training_cutoffs"]
        assert last > date.fromisoformat(held_out[-1])


def test_the_human_output_prints_the_rolling_table(slice_report: dict[str, Any]) -> None:
    # Without --json the command prints `render_markdown` of this very report.
    out = render_markdown(BacktestReport.model_validate(slice_report))
    table = out[out.index("## Rolling evaluation") :]
    assert "| task | metric | model | best baseline |" in table
    assert "| churn | roc_auc |" in table and "| ltv | spearman |" in table
    assert "| ltv | mae (lower is better) |" in table
