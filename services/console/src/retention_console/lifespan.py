"""The console process's lifespan: staged upload files swept while it runs, closed with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from retention_console.services import Services
from retention_console.staging import StagedFiles

SWEEP_EVERY_SECONDS = 60


def lifespan(
    staged_files: StagedFiles, services: Services
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def running(_: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_every_minute(staged_files))
        yield
        sweeper.cancel()
        staged_files.close()
        await services.close()

    return running


async def _sweep_every_minute(staged_files: StagedFiles) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        await asyncio.to_thread(staged_files.sweep)
