"""`POST /v1/retrain`, `GET /v1/runs`, `GET /v1/runs/{run_id}`: the caller's tenant only."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from retention_shared.auth import AdminCaller, ReadCaller
from retention_trainer.api.deps import RunsDep
from retention_trainer.runs import RunOptions
from retention_trainer.store import Trigger

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


@router.get("/runs/{run_id}")
async def get_run(run_id: str, caller: ReadCaller, runs: RunsDep) -> dict[str, Any]:
    """The run record with its backtest report (JSON) and Markdown."""
    record = runs.store.get(run_id)
    # Another tenant's run answers exactly like an unknown one: ids reveal nothing.
    if record is None or record.tenant_id != caller.tenant_id:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail={"field": "run_id", "problem": f"no run {run_id!r} for this tenant"},
        )
    return record.detail()
