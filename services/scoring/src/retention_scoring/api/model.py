"""`GET /v1/model`: the tenant's model card."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from retention_scoring.api.deps import State, champion_of
from retention_shared.auth import ReadCaller
from retention_shared.events import TimeWindow

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


@router.get("/model")
async def model_card(caller: ReadCaller, state: State) -> ModelCard:
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
