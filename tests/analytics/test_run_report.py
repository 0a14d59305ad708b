"""`GET /v1/runs/{id}/report` on the running stack: the champion's run report, in Markdown and
HTML, states the numbers scoring answers for the same model and customers.

The report scores every customer at the run's last order; scoring's tenant clock is the latest
order too, and no order arrived after the upload, so customers, at-risk count, revenue at risk,
predicted revenue, the segment table and the default campaign must agree.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict

import httpx
import pytest

from retention_bundle.report_html import PAGE_CSP
from retention_cli.stack import Stack
from retention_trainer.run_report import REPORT_CAMPAIGN
from retention_trainer.run_report_markdown import HEADLINE_LABELS
from tests.support.problems import field_problems, first_problem
from tests.support.stack import auth, url

OTHER = "e2e-other"


def _get(stack: Stack, service: str, path: str, key: str | None = None) -> httpx.Response:
    return httpx.get(
        f"{url(stack, service)}{path}", headers=auth(key) if key else auth(), timeout=30
    )


@pytest.fixture(scope="module")
def champion_run(loaded_stack: Stack) -> dict:
    """The run whose model scoring serves."""
    tag = _get(loaded_stack, "scoring", "/v1/model").json()["model_tag"]
    runs = _get(loaded_stack, "trainer", "/v1/runs").json()["runs"]
    return next(run for run in runs if run["model_tag"] == tag)


@pytest.fixture(scope="module")
def markdown(loaded_stack: Stack, champion_run: dict) -> str:
    response = _get(loaded_stack, "trainer", f"/v1/runs/{champion_run['run_id']}/report?format=md")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    return response.text


def cells(markdown: str, label: str) -> list[str]:
    for line in markdown.splitlines():
        if line.startswith(f"| {label} |"):
            return [cell.strip() for cell in line.strip("|").split("|")][1:]
    raise AssertionError(f"no row {label!r} in the report")


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def headline(markdown: str, key: str) -> float:
    label = HEADLINE_LABELS[key]
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {label}"))
    return number(row.strip("|").split("|")[1].strip())


def test_the_headline_and_segments_are_what_scoring_answers(
    loaded_stack: Stack, champion_run: dict, markdown: str
) -> None:
    assert champion_run["has_run_report"]
    segments = _get(loaded_stack, "scoring", "/v1/segments").json()
    high = _get(loaded_stack, "scoring", "/v1/customers?risk_band=high&limit=1").json()
    rows = segments["segments"]
    assert headline(markdown, "customers") == segments["customers"]
    assert headline(markdown, "at_risk") == high["total"]
    assert headline(markdown, "revenue_at_risk") == pytest.approx(
        sum(s["revenue_at_risk"] for s in rows), abs=1
    )
    assert headline(markdown, "predicted_revenue") == pytest.approx(
        sum(s["predicted_ltv"] for s in rows), abs=1
    )
    assert 0 < headline(markdown, "active_90d") <= segments["customers"]
    for s in rows:
        found = cells(markdown, s["segment"])  # the segment table's row comes first
        assert number(found[0]) == s["customers"]
        assert number(found[3]) == pytest.approx(s["revenue_at_risk"], abs=1)
        assert found[-1] == s["action"]


def test_the_campaign_plan_is_scorings_plan_for_the_same_budget(
    loaded_stack: Stack, markdown: str
) -> None:
    plan = httpx.post(
        f"{url(loaded_stack, 'scoring')}/v1/campaigns/plan",
        json={**asdict(REPORT_CAMPAIGN), "contacts_limit": 1},
        headers=auth(),
        timeout=30,
    ).json()
    assert f"contact {plan['contacts_total']:,} of {plan['candidates']:,} customers" in markdown
    expected = cells(markdown, "expected")
    assert number(expected[1]) == pytest.approx(plan["expected"]["expected_saved_revenue"], abs=1)
    assert number(expected[3]) == pytest.approx(plan["expected"]["net_profit"], abs=1)


def test_the_report_as_a_page(loaded_stack: Stack, champion_run: dict, markdown: str) -> None:
    response = _get(
        loaded_stack, "trainer", f"/v1/runs/{champion_run['run_id']}/report?format=html"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    page = response.text
    assert page.startswith("<!doctype html>") and "<script" not in page
    separators = re.findall(r"^\|(?: -{3}:? \|)+$", markdown, flags=re.MULTILINE)
    assert page.count("<table>") == len(separators)  # one table per Markdown table
    assert "<h2>What drives churn</h2>" in page and "<h2>Campaign plan</h2>" in page


def test_unknown_foreign_and_untrained_runs(loaded_stack: Stack, champion_run: dict) -> None:
    run_id = champion_run["run_id"]
    unknown = _get(loaded_stack, "trainer", "/v1/runs/no-such-run/report")
    foreign = _get(loaded_stack, "trainer", f"/v1/runs/{run_id}/report", key=OTHER)
    for response in (unknown, foreign):
        assert response.status_code == 404 and first_problem(response)[0] == "run_id"
    bad = _get(loaded_stack, "trainer", f"/v1/runs/{run_id}/report?format=pdf")
    assert bad.status_code == 422
    # The empty tenant's run is skipped (no orders): it has no report.
    started = httpx.post(f"{url(loaded_stack, 'trainer')}/v1/retrain", headers=auth(OTHER))
    assert started.status_code == 202, started.text
    skipped = started.json()["run_id"]
    deadline = time.monotonic() + 60
    while _get(loaded_stack, "trainer", f"/v1/runs/{skipped}", key=OTHER).json()["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, "the empty tenant's run did not finish"
        time.sleep(0.2)
    refused = _get(loaded_stack, "trainer", f"/v1/runs/{skipped}/report", key=OTHER)
    assert refused.status_code == 409, refused.text
    assert field_problems(refused) == [
        ("run_id", f"run {skipped!r} is skipped: only a trained run has a report")
    ]
