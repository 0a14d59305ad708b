"""Resident memory and CPU of the stack's processes, sampled every `interval` in a thread.

Each watched process is a service (or the broker) with its descendants, if it ever has any.
Per sample the thread reads VmRSS of each; it keeps every sample (time, RSS per process), so a
stage's peak can be read afterwards from the stage's window, and so the peak of the *sum* is the
peak of what the machine held at one moment — smaller than the sum of the peaks. VmHWM (the
kernel's own high-water mark of a process, exact between samples) is read once at the end:
never `ru_maxrss`, which Linux carries from the parent across fork and exec.

RSS counts a page in every process that maps it: the shared libraries' pages and the pages a
forked child shares with its parent are counted once per process, so the sum of RSS overstates
what the stack holds. PSS (`/proc/<pid>/smaps_rollup`) divides each page among the processes
that map it, so a sum of PSS counts it once (USS would count it in none). Reading smaps_rollup
costs ~1 ms of CPU per process (the kernel walks the page tables; VmRSS costs ~15 µs), too
much ten times a second for eight processes on a shared machine, so PSS is read every
`pss_every` samples and whenever the RSS sum reaches a new high (at most every
`pss_min_gap` s), which catches the peak.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIB = 1024 * 1024


def status_kib(pid: int, key: str) -> int | None:
    """A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kib(pid: int) -> int | None:
    """PSS of a process in KiB (`/proc/<pid>/smaps_rollup`), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            data = rollup.read()
    except OSError:
        return None
    at = data.find(b"\nPss:")
    return int(data[at + 5 : data.index(b"kB", at)]) if at >= 0 else None


def tree(pid: int) -> list[int]:
    """`pid` and its descendants now."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its descendants (alive or waited for)."""
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with_child = child.cpu_times()
            total += with_child.user + with_child.system
        return total
    except psutil.Error:
        return math.nan


@dataclass
class Sampler:
    """Samples `pids` (name → pid) until `stop`; `series[name]` is RSS in bytes per sample."""

    pids: dict[str, int]
    interval: float = 0.1
    cpu_every: int = 5  # CPU seconds are read every this many samples
    pss_every: int = 10  # PSS is read every this many samples, and at each new RSS high
    pss_min_gap: float = 0.3  # s between two PSS reads at new RSS highs
    times: list[float] = field(default_factory=list)
    series: dict[str, list[int]] = field(default_factory=dict)
    cpu_times: list[float] = field(default_factory=list)
    cpu_series: dict[str, list[float]] = field(default_factory=dict)
    pss_times: list[float] = field(default_factory=list)
    pss_series: dict[str, list[int]] = field(default_factory=dict)
    pss_read_seconds: float = 0.0  # CPU time this thread spent reading smaps_rollup
    _rss_high: int = 0
    _pss_at: float = -math.inf
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _trees: dict[str, list[int]] = field(default_factory=dict)
    _trees_at: float = 0.0

    def start(self) -> Sampler:
        self.series = {name: [] for name in self.pids}
        self.cpu_series = {name: [] for name in self.pids}
        self.pss_series = {name: [] for name in self.pids}
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> dict[str, int]:
        now = time.monotonic()
        if now - self._trees_at > 2.0:  # children are rare: look for them every 2 s
            self._trees = {name: tree(pid) for name, pid in self.pids.items()}
            self._trees_at = now
        row = {}
        for name, pids in self._trees.items():
            row[name] = sum((status_kib(pid, "VmRSS") or 0) for pid in pids) * 1024
        for name, value in row.items():
            self.series[name].append(value)
        self.times.append(now)  # last: a reader never sees a time without its values
        total = sum(row.values())
        new_high = total > self._rss_high and now - self._pss_at >= self.pss_min_gap
        self._rss_high = max(self._rss_high, total)
        if new_high or (len(self.times) - 1) % self.pss_every == 0:
            self.sample_pss(now)
        if len(self.times) % self.cpu_every == 0:
            for name, pid in self.pids.items():
                self.cpu_series[name].append(cpu_seconds(pid))
            self.cpu_times.append(now)  # last: a reader never sees a time without its values
        return row

    def sample_pss(self, now: float) -> None:
        began = time.thread_time()
        for name, pids in self._trees.items():
            # A tree's PSS is the sum of its processes': pages a child shares with its parent
            # are split between them, never counted twice.
            self.pss_series[name].append(sum((pss_kib(pid) or 0) for pid in pids) * 1024)
        self.pss_times.append(now)  # last, as above
        self._pss_at = now
        self.pss_read_seconds += time.thread_time() - began

    # --- reading the samples ------------------------------------------------------------------

    def _window(self, start: float, end: float) -> range:
        first = next((i for i, t in enumerate(self.times) if t >= start), len(self.times))
        last = next((i for i, t in enumerate(self.times) if t > end), len(self.times))
        return range(first, last)

    def peak(self, name: str, start: float = -math.inf, end: float = math.inf) -> int:
        window = self._window(start, end)
        return max((self.series[name][i] for i in window), default=0)

    def peak_total(
        self, names: list[str], start: float = -math.inf, end: float = math.inf
    ) -> tuple[int, float]:
        """The peak of the sum over `names` in the window, and when it was."""
        best, at = 0, math.nan
        for i in self._window(start, end):
            total = sum(self.series[name][i] for name in names)
            if total > best:
                best, at = total, self.times[i]
        return best, at

    def _pss_window(self, start: float, end: float) -> range:
        first = next((i for i, t in enumerate(self.pss_times) if t >= start), len(self.pss_times))
        last = next((i for i, t in enumerate(self.pss_times) if t > end), len(self.pss_times))
        return range(first, last)

    def peak_pss(self, name: str, start: float = -math.inf, end: float = math.inf) -> int:
        return max((self.pss_series[name][i] for i in self._pss_window(start, end)), default=0)

    def peak_pss_total(
        self, names: list[str], start: float = -math.inf, end: float = math.inf
    ) -> tuple[int, float]:
        """The highest PSS sum over `names` among the PSS samples in the window, and when."""
        best, at = 0, math.nan
        for i in self._pss_window(start, end):
            total = sum(self.pss_series[name][i] for name in names)
            if total > best:
                best, at = total, self.pss_times[i]
        return best, at

    def mean_pss(self, name: str, start: float, end: float) -> float:
        values = [self.pss_series[name][i] for i in self._pss_window(start, end)]
        return sum(values) / len(values) if values else math.nan

    def latest(self, name: str) -> int:
        return self.series[name][-1] if self.series[name] else 0

    def mean(self, name: str, start: float, end: float) -> float:
        values = [self.series[name][i] for i in self._window(start, end)]
        return sum(values) / len(values) if values else math.nan

    def cpu_between(self, name: str, start: float, end: float) -> float:
        """CPU seconds `name` used between the CPU samples nearest `start` and `end`."""
        times, values = self.cpu_times, self.cpu_series[name]
        known = len(times)  # the sampler thread may be appending meanwhile
        if not known:
            return math.nan
        first = min(range(known), key=lambda i: abs(times[i] - start))
        last = min(range(known), key=lambda i: abs(times[i] - end))
        return values[last] - values[first]

    def high_water(self) -> dict[str, int]:
        """VmHWM of each watched process (the service itself, not its children), in bytes."""
        return {name: (status_kib(pid, "VmHWM") or 0) * 1024 for name, pid in self.pids.items()}


def directory_bytes(path: Path) -> int:
    """Bytes of the files under `path` (0 if there is none)."""
    if not path.exists():
        return 0
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
