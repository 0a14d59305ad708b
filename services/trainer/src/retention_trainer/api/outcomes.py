"""`GET /v1/outcomes`: the realized churn metrics of the caller's champions (the outcome monitor,
`watch.py`), beside what their backtests promised."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from retention_shared.auth import ReadCaller
from retention_shared.problems import problem_responses
from retention_trainer.api.deps import RunsDep

router = APIRouter(prefix="/v1", tags=["outcomes"])

IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class Outcome(BaseModel):
    model_tag: str = Field(description="The champion whose scores were evaluated.")
    score_date: date = Field(description="The day of the scores (a cutoff: end of day, UTC).")
    horizon_days: int = Field(description="Churned = no purchase within this many days after.")
    customers: int = Field(description="Customers with a purchase by the score date.")
    churners: int
    roc_auc: float | None = Field(description="Realized; null when all or none churned.")
    brier: float = Field(description="Realized Brier score; lower is better.")
    backtest_roc_auc: float | None = Field(description="What the model's backtest measured.")
    backtest_brier: float | None
    auc_drop: float | None = Field(description="(backtest − realized) / backtest ROC-AUC.")
    drift: bool = Field(
        description="The drop exceeded RETENTION_OUTCOME_AUC_DROP: a "
        "DriftDetected(kind=performance) was published and a run asked for."
    )
    evaluated_at: IsoTime


class Outcomes(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "default",
                    "outcomes": [
                        {
                            "model_tag": "retention-default:abc123",
                            "score_date": "2011-08-31",
                            "horizon_days": 90,
                            "customers": 240,
                            "churners": 117,
                            "roc_auc": 0.741,
                            "brier": 0.196,
                            "backtest_roc_auc": 0.768,
                            "backtest_brier": 0.188,
                            "auc_drop": 0.035,
                            "drift": False,
                            "evaluated_at": "2011-12-10T00:01:00+00:00",
                        }
                    ],
                }
            ]
        }
    )

    tenant_id: str
    outcomes: list[Outcome] = Field(description="Newest evaluation first.")


@router.get("/outcomes", responses=problem_responses(401, 403, 422))
async def list_outcomes(
    caller: ReadCaller,
    runs: RunsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Outcomes:
    """Realized churn ROC-AUC and Brier of the tenant's champions once their scores' horizon
    passed, against their backtests."""
    found = runs.store.outcomes(caller.tenant_id, limit)
    return Outcomes(
        tenant_id=caller.tenant_id,
        outcomes=[Outcome.model_validate(outcome.as_dict()) for outcome in found],
    )
