"""What one analytics endpoint brings to `bench/analytics/run.py`: how to ask it cold and warm,
and the same answer computed with bare polars. Add an endpoint by writing a `Case` in its own
module next to this one and listing it in `run.CASES`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Bench:
    """The running trainer and what it holds, as every case sees it."""

    base: str  # the trainer's URL
    headers: dict[str, str]  # a read (and admin) key of `tenant`
    tenant: str
    parts: list[Path]  # the tenant's lake part files, for the bare computations
    bentoml_home: Path
    model_version: str | None  # the champion's, when a case asked for one


@dataclass(frozen=True)
class Case:
    name: str
    # Request paths (with query) whose answers the service has not cached yet; the case may
    # change state between yields (untimed), e.g. write to the lake.
    cold_requests: Callable[[Bench, int], Iterator[str]]
    warm_request: Callable[[Bench], str]
    # The warm request's answer computed with bare polars on `Bench.parts` (timed).
    bare: Callable[[Bench], Any]
    # Whether the service's JSON answer and the bare one agree (a sanity check, untimed).
    agrees: Callable[[Bench, dict[str, Any], Any], bool]
    cold_target_ms: float
    warm_target_ms: float
    needs_champion: bool = False
