"""bench/scale's sampler on real processes: PSS next to RSS, and PSS read at a new high."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.scale.sampler import Sampler, pss_kib, status_kib

MIB = 1024 * 1024
# A parent that fills 64 MiB, then forks a child that only waits: the pages are shared.
FORKING = """
import os, sys, time
block = bytearray(os.urandom(64 * 1024 * 1024))
if os.fork() == 0:
    sys.stdin.read()
    os._exit(0)
print("forked", flush=True)
sys.stdin.read()
"""


def test_a_forked_childs_shared_pages_count_once_in_pss_and_twice_in_rss() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", FORKING], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == b"forked"
        sampler = Sampler({"parent": parent.pid})
        sampler.series, sampler.pss_series = {"parent": []}, {"parent": []}
        sampler.sample()  # the first sample reads PSS too, over the parent and its child
        rss, pss = sampler.series["parent"][0], sampler.pss_series["parent"][0]
        assert rss >= 2 * 64 * MIB  # the 64 MiB block counted in each process
        assert pss < rss - 50 * MIB  # ... and once in the sum of PSS
        assert pss > 64 * MIB
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        parent.wait(timeout=10)


def test_pss_is_read_every_pss_every_samples_and_at_each_new_rss_high() -> None:
    sampler = Sampler({"me": os.getpid()}, pss_every=1000, pss_min_gap=0.0)
    sampler.series, sampler.pss_series = {"me": []}, {"me": []}
    sampler.sample()
    sampler.sample()  # no new high worth a read: RSS as before or lower
    reads = len(sampler.pss_times)
    held = bytearray(os.urandom(32 * MIB))  # a new high of the RSS sum
    sampler.sample()
    assert len(sampler.pss_times) == reads + 1
    assert sampler.peak_pss("me") >= sampler.pss_series["me"][0] + 30 * MIB
    assert sampler.pss_read_seconds > 0
    del held


def test_pss_is_at_most_rss_and_none_for_a_process_that_is_not_there() -> None:
    own_pss, own_rss = pss_kib(os.getpid()), status_kib(os.getpid(), "VmRSS")
    assert own_pss is not None and own_rss is not None and 0 < own_pss <= own_rss
    assert pss_kib(2**22 + 7) is None  # above pid_max's default: no such process
