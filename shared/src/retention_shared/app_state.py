"""FastAPI dependencies handing a route what the app's lifespan put on `app.state`."""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request


def app_state(path: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency answering `request.app.state.<path>` (dotted: `"ctx.settings"`); a service's
    `api/deps.py` gives it its type with `Annotated[T, Depends(app_state(...))]`."""
    read = operator.attrgetter(path)

    # async: a sync dependency costs a worker-thread hop per request (bench/scoring).
    async def dependency(request: Request) -> Any:
        return read(request.app.state)

    dependency.__name__ = f"app_state_{path.replace('.', '_')}"
    return dependency
