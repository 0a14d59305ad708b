"""`POST /v1/retrain`, `GET /v1/runs`, `GET /v1/runs/{run_id}` and its `/report`: the caller's
tenant only."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from retention_shared.auth import AdminCaller, ReadCaller
from retention_trainer.api.deps import RunsDep
from retention_trainer.report_html import PAGE_CSP, markdown_page
from retention_trainer.runs import RunManager, RunOptions
from retention_trainer.store import RunRecord, RunStatus, Trigger

router = APIRouter(prefix="/v1", tags=["runs"])

# Control characters (but newline and tab) and lone surrogates: the run store cannot hold the
# latter, and the former make a reason print as something else in logs and reports.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str) -> str:
    if _UNPRINTABLE.search(text):
        raise ValueError("must not contain control characters other than newline and tab")
    return text


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, AfterValidator(_printable)] | None = Field(
        None, max_length=500, description="Free text kept with the run."
    )
    cutoff_every_days: StrictInt | None = Field(
        None,
        ge=7,
        le=365,
        description="Spacing of the training cutoffs for this run only (default "
        "RETENTION_CUTOFF_EVERY_DAYS); sparser cutoffs train faster on fewer examples.",
    )


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED)
async def retrain(
    caller: AdminCaller, runs: RunsDep, request: Annotated[RetrainRequest | None, Body()] = None
) -> dict[str, Any]:
    """Ask for a run of the caller's tenant; during a run it joins the one queued follow-up."""
    request = request or RetrainRequest()
    options = RunOptions(cutoff_every_days=request.cutoff_every_days)
    record = runs.submit(caller.tenant_id, Trigger("request", request.reason), options)
    return {
        "run_id": record.run_id,
        "status": record.status.value,
        "triggers": len(record.triggers),
        "options": record.options,
    }


@router.get("/runs")
async def list_runs(
    caller: ReadCaller, runs: RunsDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    records = runs.store.list(caller.tenant_id, limit)
    return {"tenant_id": caller.tenant_id, "runs": [r.summary() for r in records]}


def _run_of(runs: RunManager, run_id: str, tenant_id: str) -> RunRecord:
    record = runs.store.get(run_id)
    # Another tenant's run answers exactly like an unknown one: ids reveal nothing.
    if record is None or record.tenant_id != tenant_id:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "run_id", "problem": f"no run {run_id!r} for this tenant"},
        )
    return record


@router.get("/runs/{run_id}")
async def get_run(run_id: str, caller: ReadCaller, runs: RunsDep) -> dict[str, Any]:
    """The run record with its backtest report (JSON) and Markdown."""
    return _run_of(runs, run_id, caller.tenant_id).detail()


_TRAINED = (RunStatus.PUBLISHED, RunStatus.REJECTED)


class ReportFormat(StrEnum):
    MD = "md"
    HTML = "html"


_REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The run report, as Markdown or as an HTML page.",
        "content": {"text/markdown": {}, "text/html": {}},
    },
    404: {"description": "No such run for this tenant."},
    409: {"description": "The run has no report: it was not trained (skipped, failed, queued)."},
}


@router.get("/runs/{run_id}/report", response_class=Response, responses=_REPORT_RESPONSES)
async def get_run_report(
    run_id: str,
    caller: ReadCaller,
    runs: RunsDep,
    report_format: Annotated[ReportFormat, Query(alias="format")] = ReportFormat.MD,
) -> Response:
    """The run report for managers: headline numbers, segments, churn drivers, backtest,
    changes against the previous champion and a campaign plan (docs/trainer.md)."""
    record = _run_of(runs, run_id, caller.tenant_id)
    report, trained = record.run_report, record.status in _TRAINED
    # A failed run may have got as far as writing one; it still is not a result to act on.
    if report is None or not trained:
        problem = (
            f"run {run_id!r} was recorded before run reports existed"
            if trained
            else f"run {run_id!r} is {record.status.value}: only a trained run has a report"
        )
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail={"field": "run_id", "problem": problem}
        )
    if report_format is ReportFormat.MD:
        return Response(report, media_type="text/markdown; charset=utf-8")
    page = markdown_page(report, f"Run report {run_id}")
    return Response(
        page, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": PAGE_CSP}
    )
