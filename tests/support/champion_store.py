"""A data directory and model store as a published training run leaves them.

The bundle goes into the BentoML store at `home` (in a child process, as the services find it),
and the trainer's run store gets the run record and champion pointer its promotion writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from retention_bundle.bundle import ModelBundle
from retention_shared.config import Settings
from retention_trainer.runs.history import orders_summary
from retention_trainer.store import ChampionRecord, RunRecord, RunStatus, RunStore, Trigger
from tests.support.scoring_service import store_bundle

PROMOTED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def store_champion(
    settings: Settings,
    home: Path,
    work: Path,
    bundle: ModelBundle,
    tenant_id: str,
    orders: pl.DataFrame,
    run_id: str = "run-before-the-restart",
) -> str:
    """Make `bundle` the tenant's champion in the stores; returns its tag."""
    tag = store_bundle(bundle, home, work)
    record = RunRecord(
        run_id=run_id,
        tenant_id=tenant_id,
        status=RunStatus.PUBLISHED,
        triggers=[Trigger("request", at=PROMOTED_AT)],
        options={},
        created_at=PROMOTED_AT,
        started_at=PROMOTED_AT,
        finished_at=PROMOTED_AT,
        message="promoted",
        model_tag=tag,
        data=orders_summary(orders),
    )
    store = RunStore(settings.data_dir / "trainer" / "runs.sqlite")
    try:
        store.add(record)
        store.save(record, ChampionRecord(tenant_id, tag, run_id, {"roc_auc": 0.74}, PROMOTED_AT))
    finally:
        store.close()
    return tag
