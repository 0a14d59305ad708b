"""Shared dependencies of the trainer's routes: the run manager, the lake consumer, the cohort
cache."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retention_trainer.cohort_cache import CohortCache
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.migration_cache import SegmentMigrations
from retention_trainer.runs.queue import RunManager


async def get_runs(request: Request) -> RunManager:
    return request.app.state.runs


async def get_lake(request: Request) -> LakeConsumer:
    return request.app.state.lake


async def get_cohorts(request: Request) -> CohortCache:
    return request.app.state.cohorts


async def get_migrations(request: Request) -> SegmentMigrations:
    return request.app.state.migrations


RunsDep = Annotated[RunManager, Depends(get_runs)]
LakeDep = Annotated[LakeConsumer, Depends(get_lake)]
CohortsDep = Annotated[CohortCache, Depends(get_cohorts)]
MigrationsDep = Annotated[SegmentMigrations, Depends(get_migrations)]
