"""`GET /v1/model`: the tenant's model card."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from retention_scoring.api.deps import State, champion_of
from retention_shared.auth import ReadCaller
from retention_shared.events import TimeWindow
from retention_shared.openapi_docs import example_response
from retention_shared.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["model"])


class DriftView(BaseModel):
    # "not checked yet", "stable" or "drift".
    status: str
    checked_at: datetime | None = None
    threshold: float
    psi: dict[str, float] = {}
    drifted_features: list[str] = []
    published_at: datetime | None = None


class ModelCard(BaseModel):
    tenant_id: str
    model_version: str
    model_tag: str
    champion_since: datetime
    loaded_at: datetime
    trained_at: datetime
    training_window: TimeWindow
    windows: dict
    feature_schema: list[str]
    churn: dict
    ltv: dict
    segments: list
    drift: DriftView


def _task(report: dict, name: str, keys: tuple[str, ...]) -> dict:
    section = report.get(name, {})
    return {key: section[key] for key in keys if key in section}


_EXAMPLE = {
    "tenant_id": "default",
    "model_version": "kx3b2bq7ownflzaf",
    "model_tag": "retention-default:kx3b2bq7ownflzaf",
    "champion_since": "2024-05-01T09:00:42Z",
    "loaded_at": "2024-05-01T09:00:43Z",
    "trained_at": "2024-05-01T09:00:30Z",
    "training_window": {"start": "2009-12-01T07:45:00Z", "end": "2011-12-09T12:50:00Z"},
    "windows": {"churn": {"test_cutoff": "2011-09-10", "horizon_days": 90}},
    "feature_schema": ["recency_days", "frequency", "monetary"],
    "churn": {"model": {"roc_auc": 0.826, "pr_auc": 0.781}, "baselines": {"recency": {}}},
    "ltv": {"model": {"spearman": 0.665, "top10_capture": 0.52}, "baselines": {}},
    "segments": [{"segment": "At risk", "customers": 412}],
    "drift": {
        "status": "stable",
        "checked_at": "2024-05-02T09:00:00Z",
        "threshold": 0.2,
        "psi": {"recency_days": 0.04},
        "drifted_features": [],
        "published_at": None,
    },
}


@router.get(
    "/model",
    responses=example_response(_EXAMPLE) | problem_responses(401, 403, 503),
)
async def model_card(caller: ReadCaller, state: State) -> ModelCard:
    """The tenant's champion: version, training window, backtest numbers against the baselines,
    segments, and the latest drift check (503 before the first model)."""
    champion = champion_of(state, caller.tenant_id)
    bundle, published = champion.bundle, champion.published
    drift = state.drift.get(caller.tenant_id)
    threshold = state.settings.drift_psi_threshold
    if drift is None or drift.model_version != champion.version:
        drift_view = DriftView(status="not checked yet", threshold=threshold)
    else:
        drift_view = DriftView(
            status="drift" if drift.drifted else "stable",
            checked_at=drift.checked_at,
            threshold=drift.threshold,
            psi=drift.psi,
            drifted_features=drift.drifted,
            published_at=drift.published_at,
        )
    report = bundle.report
    return ModelCard(
        tenant_id=caller.tenant_id,
        model_version=champion.version,
        model_tag=champion.tag,
        champion_since=published.published_at,
        loaded_at=champion.loaded_at,
        trained_at=champion.trained_at,
        training_window=published.training_window,
        windows=bundle.windows,
        feature_schema=list(bundle.feature_names),
        churn=_task(report, "churn", ("model", "baselines", "threshold", "test_customers")),
        ltv=_task(report, "ltv", ("model", "baselines", "objective", "interval_coverage_10_90")),
        segments=list(report.get("segments", [])),
        drift=drift_view,
    )
