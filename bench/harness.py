"""What the benchmarks share: their command line (`--data`, `--keep`), the data file they read,
the work directory they leave behind, what they sample from a process (CPU seconds, resident
memory), percentiles, the machine's load average and the results table they print."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONLINE_RETAIL_II = REPO.parent / "shared" / "data" / "online_retail_II.parquet"
FALLBACK = REPO / "data" / "online_retail.parquet"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line, described by the first line of its docstring, with the options
    every benchmark has: `--data` (see `data_file`) and `--keep` (see `work_dir`)."""
    result = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    result.add_argument("--data", type=Path, default=None, help="a UCI file (default: II)")
    result.add_argument("--keep", action="store_true", help="keep the work dir (service logs)")
    return result


def data_file(chosen: Path | None) -> Path:
    """`chosen`, else online_retail_II from ../shared, else the bundled file (and says so)."""
    if chosen is not None:
        return chosen
    if ONLINE_RETAIL_II.exists():
        return ONLINE_RETAIL_II
    print(
        f"note: {ONLINE_RETAIL_II} not found; falling back to the bundled {FALLBACK.name} "
        "(UCI Online Retail I, the second year only — not the file the issues name)"
    )
    return FALLBACK


@contextmanager
def work_dir(name: str, keep: bool) -> Iterator[Path]:
    """A temporary work directory, removed at the end unless `keep` or the benchmark failed
    (the service logs in it are then the first thing to read)."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield work
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def load() -> str:
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def verdict(ok: bool, target: str) -> str:
    return f"{'meets' if ok else 'MISSES'} target {target}"


def table(rows: list[tuple[str, str, str]]) -> str:
    """(name, value, note) rows, names left- and values right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(
        f"{name:<{widths[0]}}  {value:>{widths[1]}}  {note}".rstrip() for name, value, note in rows
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mib(pid: int) -> float:
    """A process' resident memory now, in MiB (Linux /proc; NaN elsewhere)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return math.nan
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan
