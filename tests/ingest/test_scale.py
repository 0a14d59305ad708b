"""The whole online_retail_II (1.07M rows) in bounded memory; prints rows/s and peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

WHOLE_FILE = REPO.parent / "shared" / "data" / "online_retail_II.parquet"

MEASURE = """
import json, sys, time
from pathlib import Path
from retention_ingest.file_ingest import ingest_file
from retention_ingest.order_events import order_event_payloads

def peak_rss_kib():
    # VmHWM is this process's own high-water mark. ru_maxrss is not: Linux carries the
    # parent's peak across fork and exec, so it measured the pytest worker that started us.
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))

start, cpu = time.perf_counter(), time.process_time()
result = ingest_file(Path(sys.argv[1]), tenant_id="t", source="upload:bench", work_dir=Path(sys.argv[2]))
payloads = sum(len(order_event_payloads(batch)) for batch in result.event_batches(10_000))
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "cpu_seconds": time.process_time() - cpu,
    "peak_rss_mb": peak_rss_kib() / 1024,
    "payloads": payloads,
    **{k: v for k, v in result.summary().items() if k != "file"},
}, default=str))
"""


@pytest.mark.slow
@pytest.mark.skipif(not WHOLE_FILE.exists(), reason="needs ../shared/data/online_retail_II.parquet")
def test_online_retail_ii_under_one_gigabyte(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(WHOLE_FILE), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    rows_per_second = measured["rows_read"] / measured["seconds"]
    print(
        f"\nonline_retail_II: {measured['rows_read']:,} rows in {measured['seconds']:.2f}s "
        f"({rows_per_second:,.0f} rows/s, {measured['cpu_seconds']:.2f}s CPU), "
        f"peak RSS {measured['peak_rss_mb']:.0f} MB, {measured['order_events']:,} events"
    )
    assert measured["rows_read"] == 1_067_371
    assert measured["accepted"] + measured["rejected"] == measured["rows_read"]
    # The published quirk counts of the file (data/README.md).
    assert measured["rejected_by_reason"]["missing_customer_id"] == 243_007
    assert measured["payloads"] == measured["order_events"]
    assert measured["peak_rss_mb"] < 1024
