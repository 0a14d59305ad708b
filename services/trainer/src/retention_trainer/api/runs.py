"""`POST /v1/retrain`, `GET /v1/runs`, `GET /v1/runs/{run_id}` and its `/report`: the caller's
tenant only."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, field_serializer

from retention_bundle.backtest_report import BacktestReport
from retention_bundle.production import ProductionFit
from retention_bundle.report_html import PAGE_CSP, markdown_page
from retention_shared.auth import AdminCaller, ReadCaller
from retention_shared.cursors import CursorError, decode_cursor, encode_cursor
from retention_shared.problems import problem_responses
from retention_trainer.api.deps import RunsDep
from retention_trainer.api.report_example import REPORT_EXAMPLE
from retention_trainer.runs.options import RunOptions
from retention_trainer.runs.queue import RunManager
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
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "new export loaded", "cutoff_every_days": 30}]},
    )

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


# Times as the run store writes them (`isoformat()`, `+00:00`): typed as date-times in the
# schema, passed through as they are so the answers stay byte-for-byte what they were.
IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class RetrainAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"run_id": "3f9c1d2e", "status": "queued", "triggers": 1, "options": {}},
            ]
        }
    )

    run_id: str
    status: RunStatus = Field(description="`queued`, or `running` for the run it joined.")
    triggers: int = Field(description="Triggers the run now has (a queued run collects them).")
    options: dict[str, Any] = Field(description="This run's options (`cutoff_every_days`).")


class TriggerView(BaseModel):
    kind: str = Field(
        description="`schedule`, `request`, `upload`, `drift`, `performance`, `growth` or "
        "`restart`."
    )
    detail: str | None
    at: IsoTime


_SUMMARY_EXAMPLE: dict[str, Any] = {
    "run_id": "3f9c1d2e",
    "tenant_id": "default",
    "status": "published",
    "triggers": [{"kind": "upload", "detail": "upload 9ab1", "at": "2024-05-01T09:00:00+00:00"}],
    "options": {},
    "created_at": "2024-05-01T09:00:00+00:00",
    "started_at": "2024-05-01T09:00:01+00:00",
    "finished_at": "2024-05-01T09:00:42+00:00",
    "message": "published retention-default:kx3b2bq7ownflzaf",
    "model_tag": "retention-default:kx3b2bq7ownflzaf",
    "timings": {"read_lake": 0.8, "train": 31.2, "backtest": 6.1, "gate": 0.4},
    "data": {"orders": 18532, "customers": 4339},
    "gate": {"decision": "publish", "champion_tag": None},
    "has_run_report": True,
}


class RunSummary(BaseModel):
    """A run without its reports (what the list shows)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SUMMARY_EXAMPLE]})

    run_id: str
    tenant_id: str
    status: RunStatus
    triggers: list[TriggerView]
    options: dict[str, Any]
    created_at: IsoTime
    started_at: IsoTime | None
    finished_at: IsoTime | None
    message: str | None
    model_tag: str | None = Field(description="The bundle trained (published or not).")
    timings: dict[str, float] = Field(description="Seconds per stage.")
    data: dict[str, Any] | None = Field(description="What the run read from the lake.")
    gate: dict[str, Any] | None = Field(description="The gate's numbers and decision.")
    production: ProductionFit | None = Field(
        None,
        description="Published runs: what is served — the promoted model refitted on the latest "
        "complete labels (its training cutoffs end at data end − horizon), or the evidence "
        "model and why.",
    )
    has_run_report: bool = Field(description="Whether `/v1/runs/{run_id}/report` has one.")


class RunDetail(RunSummary):
    """A run with its backtest report, as JSON and as Markdown."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                _SUMMARY_EXAMPLE | {"report": REPORT_EXAMPLE, "markdown": "# Backtest\n..."}
            ]
        }
    )

    report: BacktestReport | None = Field(
        description="The backtest report (trained runs), as the model bundle holds it."
    )
    markdown: str | None = Field(description="The backtest report as Markdown.")

    # Unannotated on purpose: a return annotation would become the field's OpenAPI schema, and
    # the document is to say `BacktestReport`.
    @field_serializer("report")
    def _stored_json(self, report: BacktestReport | None):  # type: ignore[no-untyped-def]
        """The report's JSON as the run store and bundles keep it (`as_json`: the keys older
        reports lack stay out), so a stored run answers the same bytes as before it was typed."""
        return None if report is None else report.as_json()


class RunList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "default",
                    "runs": [_SUMMARY_EXAMPLE],
                    "next_cursor": "WyJydW5zIiwxMl0",
                }
            ]
        }
    )

    tenant_id: str
    runs: list[RunSummary] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(401, 403, 422),
)
async def retrain(
    caller: AdminCaller, runs: RunsDep, request: Annotated[RetrainRequest | None, Body()] = None
) -> RetrainAccepted:
    """Ask for a run of the caller's tenant; during a run it joins the one queued follow-up.
    The body is optional."""
    request = request or RetrainRequest()
    options = RunOptions(cutoff_every_days=request.cutoff_every_days)
    record = runs.submit(caller.tenant_id, Trigger("request", request.reason), options)
    return RetrainAccepted(
        run_id=record.run_id,
        status=record.status,
        triggers=len(record.triggers),
        options=record.options,
    )


_LIST = "runs"


@router.get("/runs", responses=problem_responses(401, 403, 422))
async def list_runs(
    caller: ReadCaller,
    runs: RunsDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Runs per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page.")
    ] = None,
) -> RunList:
    """The tenant's runs, newest first, without their reports; paged like the other lists
    (`limit`, then `cursor` = the previous page's `next_cursor`)."""
    before = None
    if cursor is not None:
        try:
            (before,) = decode_cursor(_LIST, cursor, (int,))
        except CursorError as error:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail={"field": "cursor", "problem": str(error)},
            ) from None
    # One row more than the page says whether another page follows.
    found = runs.store.page(
        caller.tenant_id, limit + 1, int(before) if before is not None else None
    )
    page = found[:limit]
    return RunList(
        tenant_id=caller.tenant_id,
        runs=[RunSummary(**record.summary()) for _, record in page],
        next_cursor=encode_cursor(_LIST, (page[-1][0],)) if len(found) > limit else None,
    )


def _run_of(runs: RunManager, run_id: str, tenant_id: str) -> RunRecord:
    record = runs.store.get(run_id)
    # Another tenant's run answers exactly like an unknown one: ids reveal nothing.
    if record is None or record.tenant_id != tenant_id:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "run_id", "problem": f"no run {run_id!r} for this tenant"},
        )
    return record


@router.get("/runs/{run_id}", responses=problem_responses(401, 403, 404, 422))
async def get_run(run_id: str, caller: ReadCaller, runs: RunsDep) -> RunDetail:
    """The run record with its backtest report (JSON) and Markdown; another tenant's run is the
    same 404 as an unknown id."""
    return RunDetail(**_run_of(runs, run_id, caller.tenant_id).detail())


_TRAINED = (RunStatus.PUBLISHED, RunStatus.REJECTED)


class ReportFormat(StrEnum):
    MD = "md"
    HTML = "html"


_REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The run report, as Markdown (`format=md`) or as an HTML page "
        "(`format=html`).",
        "content": {
            "text/markdown": {
                "schema": {"type": "string"},
                "example": "# Run report\n\n## Headline\n\n- Customers scored: 4,339\n",
            },
            "text/html": {
                "schema": {"type": "string"},
                "example": "<!doctype html><html><body><h1>Run report</h1></body></html>",
            },
        },
    },
    **problem_responses(401, 403, 404, 409, 422),
}
_REPORT_RESPONSES[409]["description"] = (
    "The run has no report: it was not trained (queued, running, skipped, failed) or was "
    "recorded before run reports existed."
)


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
