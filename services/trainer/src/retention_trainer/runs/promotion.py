"""Whether a trained candidate replaces the tenant's champion, and what is announced either way.

The gate compares the candidate with the champion on the candidate's own test set. A promoted
bundle is stored (and exported) before `ModelPublished` goes out; if the announcement fails the
stored bundle is deleted again, so `retention-<tenant>:latest` always names a bundle that was
champion. A rejected candidate is never stored: `ModelRejected` names it by its run id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import bentoml

from retention_bundle.export import export_model
from retention_bundle.model_store import save_bundle_files
from retention_shared.config import Settings
from retention_shared.events import ModelPublished, ModelRejected, TimeWindow
from retention_trainer import telemetry
from retention_trainer.publishers.model_events import ModelEventsPublisher
from retention_trainer.store import ChampionRecord, RunRecord

__all__ = ["promote", "reject", "set_champion_gauges"]

log = logging.getLogger(__name__)


async def promote(
    record: RunRecord,
    bundle: dict[str, Any],
    *,
    settings: Settings,
    model_events: ModelEventsPublisher,
) -> ChampionRecord:
    """Store the bundle the training child wrote (and export it), then announce it; returns the
    new champion. `bundle` is the candidate's ``bundle`` entry (`candidate.train_candidate`)."""
    model = await asyncio.to_thread(
        save_bundle_files, record.tenant_id, bundle["metadata"], Path(bundle["directory"])
    )
    tag = str(model.tag)
    try:
        if settings.model_export_url:
            await asyncio.to_thread(export_model, tag, settings)
        headline = {k: float(v) for k, v in bundle["headline"].items()}
        start, end = (datetime.fromisoformat(t) for t in bundle["training_window"])
        event = ModelPublished(
            tenant_id=record.tenant_id,
            model_tag=tag,
            model_version=str(model.tag.version),
            run_id=record.run_id,
            training_window=TimeWindow(start=start, end=end),
            metrics=headline,
        )
        await model_events.publish(event)
    except BaseException:
        # Not announced, so not champion: keep `latest` meaning "the champion".
        with contextlib.suppress(Exception):
            await asyncio.to_thread(_delete_model, tag)
        raise
    record.model_tag = tag
    # The announcement's own time: re-announcing the champion later sends the same event.
    return ChampionRecord(record.tenant_id, tag, record.run_id, headline, event.published_at)


async def reject(
    record: RunRecord, decision: dict[str, Any], *, model_events: ModelEventsPublisher
) -> None:
    """Announce that the candidate stays a candidate, with both sets of numbers (`decision` as
    :meth:`~retention_trainer.gate.GateDecision.as_dict` gives it)."""
    assert decision["champion"] is not None
    champion_tag = (record.gate or {}).get("champion_tag")
    event = ModelRejected(
        tenant_id=record.tenant_id,
        run_id=record.run_id,
        # Rejected bundles are not stored; the run id names the candidate.
        candidate_version=record.run_id,
        champion_version=champion_tag.split(":", 1)[-1] if champion_tag else None,
        reason=decision["reason"],
        candidate_metrics=_finite(decision["candidate"]),
        champion_metrics=_finite(decision["champion"]),
    )
    await model_events.publish(event)


def set_champion_gauges(champion: ChampionRecord) -> None:
    for name, value in champion.metrics.items():
        telemetry.CHAMPION_METRIC.labels(champion.tenant_id, name).set(value)


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if math.isfinite(v)}


def _delete_model(tag: str) -> None:
    bentoml.models.delete(tag)
