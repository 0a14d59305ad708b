"""Shared dependencies of the trainer's routes: the run manager, the lake consumer, the cohort
cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from retention_shared.app_state import app_state
from retention_trainer.cohort_cache import CohortCache
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.migration_cache import SegmentMigrations
from retention_trainer.runs.queue import RunManager

RunsDep = Annotated[RunManager, Depends(app_state("runs"))]
LakeDep = Annotated[LakeConsumer, Depends(app_state("lake"))]
CohortsDep = Annotated[CohortCache, Depends(app_state("cohorts"))]
MigrationsDep = Annotated[SegmentMigrations, Depends(app_state("migrations"))]
