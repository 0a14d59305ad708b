"""`retention demo --once` from a clean state: what it prints is what the services answer."""

from __future__ import annotations

import math
import re
from pathlib import Path

import httpx
import polars as pl
import pytest
from rich.console import Console

from retention_cli.demo import DemoReport, run_demo
from retention_cli.demo_orders import BUNDLED_DATA, demo_orders
from retention_cli.demo_report import AT_RISK_QUERY, SAMPLE_CAMPAIGN
from retention_cli.stack import SERVICES, WITH_CONSOLE
from retention_shared.config import Settings
from retention_shared.embedded_broker import free_port


def same_answer(printed: object, live: object) -> bool:
    """Equal, floats up to rounding: a parallel polars sum may differ in its last bit."""
    if isinstance(printed, float) and isinstance(live, float):
        return math.isclose(printed, live, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(printed, dict) and isinstance(live, dict):
        return printed.keys() == live.keys() and all(
            same_answer(printed[k], live[k]) for k in printed
        )
    if isinstance(printed, list) and isinstance(live, list):
        return len(printed) == len(live) and all(map(same_answer, printed, live))
    return printed == live


def test_demo_orders_hold_every_row_of_the_file_once_in_time_order() -> None:
    orders = demo_orders()
    raw = pl.read_parquet(BUNDLED_DATA)
    assert sum(len(o.body["lines"]) for o in orders) == raw.height
    assert [o.occurred_at for o in orders] == sorted(o.occurred_at for o in orders)
    invoices = raw.select("InvoiceNo", "CustomerID").unique()
    assert len(orders) == invoices.height
    first = orders[0].body
    assert first["customer_id"] == "17850" and first["order_datetime"] == "2010-12-01T08:26:00"
    # Rows without a customer are sent as they are; ingest's cleaning answers for them.
    assert any(o.body["customer_id"] is None for o in orders)


@pytest.mark.slow
def test_demo_once_prints_what_the_services_answer(tmp_path: Path) -> None:
    ports = {f"{name}_port": free_port() for name in (*WITH_CONSOLE, "broker")}
    settings = Settings(dev_mode=True, log_json=False, **ports)
    console = Console(record=True, width=240, force_terminal=False)
    live: dict[str, object] = {}

    def ask_the_services(report: DemoReport) -> None:
        headers = {"Authorization": f"Bearer {report.key}"}
        scoring = report.urls["scoring"]
        live["at_risk"] = httpx.get(
            f"{scoring}/v1/customers", params=AT_RISK_QUERY, headers=headers
        ).json()
        live["segments"] = httpx.get(f"{scoring}/v1/segments", headers=headers).json()
        live["model"] = httpx.get(f"{scoring}/v1/model", headers=headers).json()
        live["campaign"] = httpx.post(
            f"{scoring}/v1/campaigns/plan", json=SAMPLE_CAMPAIGN, headers=headers
        ).json()
        live["runs"] = httpx.get(f"{report.urls['trainer']}/v1/runs", headers=headers).json()

    report = run_demo(settings, once=True, console=console, on_report=ask_the_services)
    printed = console.export_text()

    # The printed top 10 is the service's list for the same filters, in the same order.
    expected_ids = [row["customer_id"] for row in live["at_risk"]["customers"]]
    assert expected_ids and len(expected_ids) <= 10
    section = printed.split("Top 10 high-value customers at risk")[1].split("Campaign plan")[0]
    printed_ids = re.findall(r"^\S*\s*(\d{5})\s", section, flags=re.MULTILINE)
    assert printed_ids == expected_ids
    for row in live["at_risk"]["customers"]:
        # Churn risk among the customers of high predicted value: AT_RISK_QUERY's filter.
        assert row["risk_band"] in ("medium", "high") and row["value_tier"] in ("High", "VIP")
        assert f"{row['churn_probability']:.2f}" in section
    assert same_answer(report.at_risk, live["at_risk"])

    # Segments, model card and campaign plan: the same answers.
    assert same_answer(report.segments, live["segments"])
    for row in live["segments"]["segments"]:
        assert row["segment"] in printed and row["action"] in printed
    assert report.model["model_tag"] == live["model"]["model_tag"]
    assert live["model"]["model_tag"] in printed
    auc = live["model"]["churn"]["model"]["roc_auc"]
    assert f"{auc:.3f}" in printed
    assert same_answer(report.campaign, live["campaign"])
    plan = live["campaign"]
    assert f"{len(plan['contacts']):,} of {plan['candidates']:,} customers to contact" in printed
    assert f"{plan['expected']['net_profit']:,.0f}" in printed

    # The stream went through ingest's cleaning and a model was trained on it.
    streamed = report.streamed
    assert streamed["accepted"] + streamed["rejected"] == streamed["orders"] == len(demo_orders())
    assert streamed["rejected"] > 0  # the raw file has orders without a customer
    statuses = [run["status"] for run in live["runs"]["runs"]]
    assert "published" in statuses
    for name in SERVICES:
        assert f"{report.urls[name]}/docs" in printed
    assert report.key in printed
    assert f"open http://127.0.0.1:{ports['console_port']} and sign in with {report.key}" in printed
