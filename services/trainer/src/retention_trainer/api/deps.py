"""Shared dependencies of the trainer's routes: the run manager and the lake consumer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.runs import RunManager


async def get_runs(request: Request) -> RunManager:
    return request.app.state.runs


async def get_lake(request: Request) -> LakeConsumer:
    return request.app.state.lake


RunsDep = Annotated[RunManager, Depends(get_runs)]
LakeDep = Annotated[LakeConsumer, Depends(get_lake)]
