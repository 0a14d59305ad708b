"""What an upload and a training run leave resident after they are done, and what returning
free memory to the OS gives back.

    uv run python bench/scale/retained.py            # online_retail_II, a few minutes
    uv run python bench/scale/retained.py --k 4

In one process, as the ingest and trainer services run them (their worker threads aside): the
upload's reading, cleaning and grouping (`ingest_file`, then every event batch as the upload
publishes them), then a training run (`train_and_backtest` with the service's defaults). After
each, with every result dropped and the garbage collected: VmRSS; then again after glibc's
`malloc_trim(0)`, which hands free heap pages back to the OS. bench/scale/run.py sees the
services keep hundreds of MiB after an upload and a run ("idle - floor"); this says how much
of that is memory the process no longer uses but has not returned.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the trainer sets it

import pyarrow as pa  # noqa: E402

from bench.harness import data_file, load  # noqa: E402
from bench.scale.copies import write_copies  # noqa: E402
from bench.scale.sampler import status_kib  # noqa: E402
from retention_ingest.file_ingest import ingest_file  # noqa: E402
from retention_ingest.order_events import order_event_payloads  # noqa: E402
from retention_shared.features import orders_from_event_columns  # noqa: E402
from retention_trainer.pipeline import train_and_backtest  # noqa: E402

LIBC = ctypes.CDLL("libc.so.6")


def rss_mib() -> float:
    return (status_kib(os.getpid(), "VmRSS") or 0) / 1024


def settled() -> tuple[float, float, float]:
    """RSS in MiB after collecting garbage; after glibc's malloc_trim as well; after Arrow's
    memory pool released what it caches too."""
    gc.collect()
    time.sleep(12.0)  # jemalloc (polars) returns freed pages by itself after its 10 s decay
    before = rss_mib()
    LIBC.malloc_trim(0)
    trimmed = rss_mib()
    pa.default_memory_pool().release_unused()
    return before, trimmed, rss_mib()


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, default=None)
    cli.add_argument("--k", type=int, default=1, help="k copies of the file (bench/scale)")
    cli.add_argument("--no-training", action="store_true")
    args = cli.parse_args()
    print(f"load average: {load()}")
    work = Path(tempfile.mkdtemp(prefix="bench-retained-"))
    source = data_file(args.data)
    data = source if args.k == 1 else write_copies(source, args.k, work / "k.parquet").path
    LIBC.malloc_trim(0)
    start = rss_mib()
    print(f"imports: {start:,.0f} MiB")

    cleaned = ingest_file(data, tenant_id="default", source="bench", work_dir=work / "ingest")
    payloads = sum(len(order_event_payloads(batch)) for batch in cleaned.event_batches(5000))
    peak = (status_kib(os.getpid(), "VmHWM") or 0) / 1024
    orders = orders_from_event_columns(cleaned.events())
    del cleaned
    held, trimmed, released = settled()
    print(
        f"upload ({payloads:,} events): peak {peak:,.0f} MiB; after it {held:,.0f} MiB "
        f"(+{held - start:,.0f}), after malloc_trim {trimmed:,.0f} MiB (+{trimmed - start:,.0f}), "
        f"after Arrow's pool released {released:,.0f} MiB (+{released - start:,.0f}); Arrow "
        f"pool {pa.default_memory_pool().backend_name} holds "
        f"{pa.total_allocated_bytes() / 2**20:,.0f} MiB; the orders frame kept for training: "
        f"{orders.estimated_size() / 2**20:,.0f} MiB"
    )
    if not args.no_training:
        base = released
        started = time.perf_counter()
        run = train_and_backtest(orders, tenant="default")
        seconds = time.perf_counter() - started
        peak = (status_kib(os.getpid(), "VmHWM") or 0) / 1024
        del run
        held, trimmed, released = settled()
        print(
            f"training run ({seconds:.0f} s): peak {peak:,.0f} MiB; after it {held:,.0f} MiB "
            f"(+{held - base:,.0f}), after malloc_trim {trimmed:,.0f} MiB "
            f"(+{trimmed - base:,.0f}), after Arrow's pool released {released:,.0f} MiB "
            f"(+{released - base:,.0f})"
        )
    print(f"load average now: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
