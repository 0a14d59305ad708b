"""`GET /v1/runs/{run_id}` declares its backtest report as `BacktestReport` (so OpenAPI documents
it) and still answers a stored run's report byte for byte as the untyped route did: the reports
of the two real bundles in tests/data (one from before the rolling evaluation) stand for runs
recorded by older trainers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from retention_shared.auth import ApiKeys, ReadCaller
from retention_shared.http_errors import install_problem_handlers
from retention_trainer.api import runs as runs_api
from retention_trainer.api.deps import RunsDep
from retention_trainer.store import RunRecord, RunStatus, RunStore, Trigger
from tests.support.uci_orders import TEST_DATA


class UntypedRunDetail(runs_api.RunSummary):
    """The run detail as it was declared before: the report any JSON object."""

    report: dict[str, Any] | None
    markdown: str | None


def _app(store: RunStore) -> FastAPI:
    app = FastAPI()
    app.include_router(runs_api.router)
    install_problem_handlers(app)
    app.state.api_keys = ApiKeys.parse("k1:acme:read")
    app.state.runs = SimpleNamespace(store=store)

    @app.get("/untyped/runs/{run_id}")
    async def untyped(run_id: str, caller: ReadCaller, runs: RunsDep) -> UntypedRunDetail:
        record = runs.store.get(run_id)
        assert record is not None
        return UntypedRunDetail(**record.detail())

    return app


@pytest.mark.parametrize("bundle", ["before-rolling", "with-rolling"])
def test_a_stored_report_answers_the_same_bytes_typed(bundle: str, tmp_path: Path) -> None:
    # The run store holds a report as JSON text (NaN as null): store it, read it back.
    stored = json.loads((TEST_DATA / "bundles" / bundle / "bundle.json").read_text())["report"]
    store = RunStore(tmp_path / "runs.sqlite")
    store.add(
        RunRecord("r1", "acme", RunStatus.PUBLISHED, [Trigger("request")], {}, datetime.now(UTC))
    )
    record = store.get("r1")
    assert record is not None
    record.report, record.markdown = json.loads(json.dumps(stored).replace("NaN", "null")), "# B\n"
    store.save(record)
    client = TestClient(_app(store))
    headers = {"Authorization": "Bearer k1"}
    typed = client.get("/v1/runs/r1", headers=headers)
    before = client.get("/untyped/runs/r1", headers=headers)
    assert typed.status_code == before.status_code == 200
    assert typed.content == before.content
    report = typed.json()["report"]
    assert report["churn"]["model"]["roc_auc"] > 0.8
    assert ("rolling" in report) == (bundle == "with-rolling")
    store.close()


def test_a_run_without_a_report_answers_null(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    store.add(RunRecord("q", "acme", RunStatus.QUEUED, [Trigger("request")], {}, datetime.now(UTC)))
    body = TestClient(_app(store)).get("/v1/runs/q", headers={"Authorization": "Bearer k1"})
    assert body.status_code == 200 and body.json()["report"] is None
    store.close()


def test_openapi_documents_the_report_as_backtest_report(tmp_path: Path) -> None:
    document = _app(RunStore(tmp_path / "runs.sqlite")).openapi()
    answer = document["paths"]["/v1/runs/{run_id}"]["get"]["responses"]["200"]
    detail = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    report = document["components"]["schemas"][detail]["properties"]["report"]
    assert {"$ref": "#/components/schemas/BacktestReport"} in report["anyOf"]
    assert "churn" in document["components"]["schemas"]["BacktestReport"]["properties"]
