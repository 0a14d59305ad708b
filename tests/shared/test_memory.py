"""Freed memory goes back to the OS: `retention_shared.memory` on this machine's glibc."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from retention_shared import memory

PROBE = """
import os
from retention_shared import memory

def rss_kib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))

assert memory.limit_arenas()
# 200 MiB in 64 KiB blocks (below the mmap threshold: heap memory glibc keeps when freed),
# the last one kept so the heap's top cannot shrink by itself.
blocks = [bytearray(64 * 1024) for _ in range(3200)]
keep = blocks[-1]
held = rss_kib()
del blocks
freed = rss_kib()
memory.trim()
print(held, freed, rss_kib())
"""


def test_trim_gives_freed_heap_back_that_glibc_kept() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env
    ).stdout
    held, freed, trimmed = (int(v) for v in out.split())
    assert held - freed < 50 * 1024, "glibc returned the freed blocks by itself"
    assert freed - trimmed > 150 * 1024, (held, freed, trimmed)


def test_the_arena_cap_leaves_an_explicit_setting_alone(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_arenas() is False


async def test_release_memory_runs_until_cancelled(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(memory, "trim", lambda: calls.append(1) or True)
    task = asyncio.create_task(memory.release_memory(every=0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(calls) >= 2 and task.cancelled()
