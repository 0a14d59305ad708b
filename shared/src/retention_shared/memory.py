"""Giving freed memory back to the operating system (glibc), so an idle service is small again.

Python, numpy, XGBoost and SQLite allocate with glibc's malloc. What they free after an upload, a
training run or a scored population stays mapped in the process: glibc returns only the top of
its main heap by itself, and every thread that allocates gets an arena of its own (up to 8 per
core), whose free pages it keeps. bench/scale measured a service after online_retail_II holding
20–46 MiB that `malloc_trim(0)` gave back (ingest 39, features 22, trainer 46, scoring 36 MiB).

- `limit_arenas`: at most `ARENAS` arenas (`mallopt(M_ARENA_MAX)`), set before the service starts
  its threads (the `MALLOC_ARENA_MAX` environment variable, when set, wins);
- `release_memory`: `malloc_trim(0)` every `TRIM_EVERY_SECONDS`, from a task of the app, and
  Arrow's pool (mimalloc) released where pyarrow is loaded (bench/scale/retained.py: 33 MiB
  after an upload).

polars allocates with its own jemalloc, which returns freed pages after its decay time.
Elsewhere than glibc the malloc calls do nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["ARENAS", "TRIM_EVERY_SECONDS", "limit_arenas", "release_memory", "trim"]

log = logging.getLogger(__name__)

ARENAS = 2
TRIM_EVERY_SECONDS = 30.0
_M_ARENA_MAX = -8  # glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  # glibc only (not musl, not macOS)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; True when applied (glibc, no MALLOC_ARENA_MAX set)."""
    if _LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Return every free page of every arena to the OS, and what Arrow's pool caches when the
    process loaded pyarrow (ingest's readers; not imported here for it: that alone is ~36 MiB);
    True if glibc released some memory."""
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    return bool(_LIBC.malloc_trim(0)) if _LIBC is not None else False


async def release_memory(every: float = TRIM_EVERY_SECONDS) -> None:
    """`trim` every `every` seconds until cancelled (cheap: a few ms on a service's heap)."""
    if _LIBC is None:
        return
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(trim)
        except Exception:  # never worth stopping a service for
            log.exception("malloc_trim failed")
