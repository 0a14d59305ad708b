"""The client commands against the real services on the session broker: `retention upload
--wait` loads the UCI slice, the trainer publishes a model, and what `customers`, `score`,
`model` and `runs` print is what the APIs answer. Each command runs as its own process, so its
exit codes are the ones a script sees."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.embedded_broker import EmbeddedBroker
from tests.support.stack import (
    API_KEY,
    READ_KEY,
    SLICE,
    auth,
    stack_of_its_own,
    url,
    wait_for_published_run,
    wait_until_scored,
)

pytestmark = pytest.mark.slow

OTHER_KEY = "e2e-other"  # tenant `other`: its uploads leave tenant default's data alone


def retention(
    stack: Stack, *args: str, key: str = API_KEY, text: bool = True
) -> subprocess.CompletedProcess[Any]:
    """`retention ...` as a process configured only by the documented variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    env.update(
        RETENTION_API_KEY=key,
        RETENTION_INGEST_URL=url(stack, "ingest"),
        RETENTION_SCORING_URL=url(stack, "scoring"),
        RETENTION_TRAINER_URL=url(stack, "trainer"),
        COLUMNS="200",  # tables as wide as they want, so each value is on one line
    )
    return subprocess.run(
        [sys.executable, "-m", "retention_cli.main", *args],
        capture_output=True,
        text=text,
        env=env,
        timeout=300,
    )


def api(stack: Stack, service: str, path: str, csv: bool = False, **params: Any) -> httpx.Response:
    """The service's own answer (with `Accept: text/csv` when `csv`), to compare with."""
    headers = {**auth(API_KEY), "Accept": "text/csv"} if csv else auth(API_KEY)
    response = httpx.get(f"{url(stack, service)}{path}", headers=headers, timeout=60, **params)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(scope="module")
def stack(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_of_its_own(kafka, tmp_path_factory.mktemp("client"), "client") as stack:
        yield stack


@pytest.fixture(scope="module")
def uploaded(stack: Stack) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`retention upload SLICE --wait` for tenant default, and the upload's status after it."""
    result = retention(stack, "upload", str(SLICE), "--wait")
    assert result.returncode == 0, result.stderr
    upload_id = result.stdout.splitlines()[0]
    return result, api(stack, "ingest", f"/v1/uploads/{upload_id}").json()


@pytest.fixture(scope="module")
def scored(stack: Stack, uploaded: tuple[Any, dict[str, Any]]) -> Stack:
    """The upload trained a model and scoring serves every customer of the slice."""
    wait_for_published_run(stack)
    wait_until_scored(stack, uploaded[1]["result"]["customers"])
    return stack


def test_upload_waits_for_the_upload_and_prints_its_counts(
    uploaded: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, status = uploaded
    # --wait returned once the upload was over: done, every order published.
    assert status["state"] == "done"
    counts = status["result"]
    assert status["progress"]["orders_published"] == counts["order_events"] > 0
    lines = result.stdout.splitlines()
    assert lines[0] == status["upload_id"]
    assert lines[1] == (
        f"upload {status['upload_id']} done: {counts['rows_read']:,} rows read, "
        f"{counts['accepted']:,} accepted, {counts['rejected']:,} rejected"
    )
    assert counts["rejected"] > 0 and counts["rejected_by_reason"]
    for reason, count in counts["rejected_by_reason"].items():
        assert re.search(rf"^  {reason} +{count:,}$", result.stdout, flags=re.MULTILINE)
    assert f"/v1/uploads/{status['upload_id']}/rejects.csv" in result.stdout
    # The progress bar went to stderr, so stdout stays what a script reads.
    assert "rows read" in result.stderr


def test_csv_export_of_every_page_is_the_apis_csv(scored: Stack, tmp_path: Path) -> None:
    export = tmp_path / "customers.csv"
    # Pages of 100 of the slice's ~380 customers: the cursor is followed and the headers joined.
    result = retention(scored, "customers", "--all", "--limit", "100", "--csv", str(export))
    assert result.returncode == 0, result.stderr
    whole = api(
        scored,
        "scoring",
        "/v1/customers",
        params={"limit": 10000},
        csv=True,
    )
    assert whole.headers.get("X-Next-Cursor") is None
    total = int(whole.headers["X-Total-Count"])
    assert total > 300
    assert export.read_bytes() == whole.content
    assert result.stderr == f"wrote {total:,} of {total:,} customers to {export}\n"
    assert not list(tmp_path.glob("*.part"))


def test_csv_to_stdout_keeps_the_filters(scored: Stack) -> None:
    filters = ["--risk-band", "high,medium", "--value-tier", "High", "--value-tier", "VIP"]
    filters += ["--min-orders", "0.5", "--next-order-to", "2012-12-31"]
    result = retention(
        scored, "customers", *filters, "--sort", "expected_orders", "--csv", text=False
    )
    assert result.returncode == 0, result.stderr
    params = [
        ("risk_band", "high,medium"),
        ("value_tier", "High"),
        ("value_tier", "VIP"),
        ("min_orders", "0.5"),
        ("next_order_to", "2012-12-31"),
        ("sort", "expected_orders"),
    ]
    expected = api(scored, "scoring", "/v1/customers", params=params, csv=True)
    assert result.stdout == expected.content
    assert expected.content.count(b"\n") > 2  # the filters leave someone to compare


def test_the_table_shows_the_apis_customers_in_order(scored: Stack) -> None:
    answer = api(scored, "scoring", "/v1/customers", params={"limit": 5}).json()
    result = retention(scored, "customers", "--limit", "5")
    assert result.returncode == 0, result.stderr
    shown = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│")]
    assert shown == [row["customer_id"] for row in answer["customers"]]
    first = answer["customers"][0]
    assert f"{first['churn_probability']:.3f}" in result.stdout
    assert f"{first['revenue_at_risk']:,.2f}" in result.stdout
    assert f"5 of {answer['total']:,} customers, model {answer['model_version']}" in result.stdout


def test_score_prints_the_served_score_and_its_reasons(scored: Stack) -> None:
    customer = api(scored, "scoring", "/v1/customers", params={"limit": 1}).json()["customers"][0]
    path = f"/v1/customers/{customer['customer_id']}/score"
    served = api(scored, "scoring", path).json()
    raw = retention(scored, "score", customer["customer_id"], "--json")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout) == served
    result = retention(scored, "score", customer["customer_id"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"customer         {served['customer_id']}\n" in out
    assert (
        f"churn            {served['churn_probability']:.3f} (risk band {served['risk_band']})"
        in out
    )
    assert (
        f"predicted LTV    {served['predicted_ltv']:,.2f} over {served['ltv_horizon_days']} days"
        in out
    )
    assert f"segment          {served['segment']}\naction           {served['action']}\n" in out
    assert served["reasons"]["churn"]
    for reason in served["reasons"]["churn"] + served["reasons"]["ltv"]:
        assert f"  {reason['direction']:<6}  {reason['text']}\n" in out


def test_model_prints_the_served_card(scored: Stack) -> None:
    card = api(scored, "scoring", "/v1/model").json()
    raw = retention(scored, "model", "--json")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout) == card
    result = retention(scored, "model")
    assert result.returncode == 0, result.stderr
    assert card["model_tag"] in result.stdout and card["model_version"] in result.stdout
    window = card["training_window"]
    assert f"{window['start']} .. {window['end']}" in result.stdout
    assert f"{card['churn']['model']['roc_auc']:,.3f}" in result.stdout
    for baseline in card["churn"]["baselines"]:
        assert baseline in result.stdout


def test_runs_lists_the_trainers_runs(scored: Stack) -> None:
    served = api(scored, "trainer", "/v1/runs").json()["runs"]
    raw = retention(scored, "runs", "--json")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["runs"] == served
    published = next(run for run in served if run["status"] == "published")
    result = retention(scored, "runs")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if published["run_id"] in line)
    assert "published" in row and "upload" in row


def test_a_wrong_key_exits_1_naming_the_key(scored: Stack) -> None:
    result = retention(scored, "customers", key="not-a-key")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "retention customers: scoring answered 401 Unauthorized: Authorization: unknown API key "
        "(check RETENTION_API_KEY or --api-key)\n"
    )
    # A read key may not upload.
    refused = retention(scored, "upload", str(SLICE), key=READ_KEY)
    assert refused.returncode == 1
    assert refused.stderr.startswith("retention upload: ingest answered 403 Forbidden: ")


def test_an_unknown_customer_exits_4(scored: Stack) -> None:
    result = retention(scored, "score", "no-such-customer")
    assert result.returncode == 4
    assert result.stderr.startswith("retention score: scoring answered 404 Not Found: ")
    assert "'no-such-customer'" in result.stderr and result.stderr.count("\n") == 1


HEADER = "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = "536365,85123A,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"


def test_a_failed_upload_exits_4_with_its_counts(stack: Stack, tmp_path: Path) -> None:
    # Readable, but every row lacks its customer: the upload is accepted, then fails.
    orders = tmp_path / "orders.csv"
    orders.write_text(HEADER + ROW.replace("17850.0", "") * 3)
    result = retention(stack, "upload", str(orders), "--wait", key=OTHER_KEY)
    assert result.returncode == 4, result.stderr
    upload_id = result.stdout.splitlines()[0]
    assert re.fullmatch(r"[0-9a-f]{32}", upload_id)
    assert f"upload {upload_id} failed: 3 rows read, 0 accepted, 3 rejected" in result.stdout
    assert re.search(r"^  missing_customer_id +3$", result.stdout, flags=re.MULTILINE)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"retention upload: upload {upload_id} failed: ")
    assert last.endswith("(no_usable_rows)")


def test_upload_sends_the_mapping_and_timezone(stack: Stack, tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "Invoice,Sku,Qty,When,Price,Client,Land\n"
        "A1,P1,2,2011-03-01 10:00:00,5.0,c1,France\n"
        "A2,P2,1,2011-03-02 11:00:00,7.5,c2,France\n"
    )
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "customer_id": "Client",
                "order_id": "Invoice",
                "order_datetime": "When",
                "product_id": "Sku",
                "quantity": "Qty",
                "unit_price": "Price",
            }
        )
    )
    result = retention(
        stack,
        "upload",
        str(orders),
        "--mapping",
        str(mapping),
        "--timezone",
        "America/New_York",
        "--wait",
        "--json",
        key=OTHER_KEY,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "done" and status["timezone"] == "America/New_York"
    assert status["result"]["accepted"] == 2 and status["result"]["customers"] == 2
    # Without the mapping the columns match no layout ingest knows: answered at once, exit 1.
    refused = retention(stack, "upload", str(orders), key=OTHER_KEY)
    assert refused.returncode == 1
    assert refused.stderr.startswith("retention upload: ingest answered 422 ")
    assert "unknown_layout" in refused.stderr
