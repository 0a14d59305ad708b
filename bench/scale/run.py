"""bench/scale: the whole pipeline on the embedded stack at k copies of online_retail_II (issue 18).

Run from the repository root:

    uv run python bench/scale/run.py --ks 1            # smoke run, about 2 minutes
    uv run python bench/scale/run.py --ks 1,4,16       # the issue's run (see docs/capacity.md)
    uv run python bench/scale/run.py --ks 1,4 --json scale.json

Per k, in this order:

1. `copies.write_copies`: k copies of the file as one tenant's history (customers and invoices
   renamed per copy, dates and values unchanged), one Parquet file, its counts checked to be
   exactly k times the file's. Not timed.
2. The embedded stack as `retention up` starts it (`retention_cli.stack.Stack`: a Tansu broker
   in memory, ingest, features, trainer, scoring, webhooks, console; each on a free port, data
   under a fresh work dir, one admin key for tenant `default`, scheduled retraining off so the
   upload's own retrain request is the one run), and a stand-in for `retention up`'s own
   process (`supervisor.py`: the benchmark runs the stack's supervisor in its own process).
   Each process' RSS (with its descendants) is sampled every --interval s from then on, its
   PSS every second and at each new high of the RSS sum (`sampler.py`); its CPU seconds are
   read before the upload and at the end.
3. Floors: once every service is ready, --floor-seconds of sampling with no data: each
   service's empty RSS.
4. The upload through ingest's HTTP API as a user sends it (`POST /v1/uploads`, the raw file),
   then the milestones of `stages.py`: ingested, features caught up, trained, served,
   materialized, scored — each stamped when the services' own answers first say so.
5. Idle: --idle-seconds more with nothing to do; the mean RSS of their second half is what the
   stack holds for this history. Bytes per customer of features and scoring are that minus the
   service's floor, over the customers.
6. The stack stops; then the offline floor, `retention backtest` on the same k-file
   (`offline.py`), alone on the machine (as far as this benchmark goes).

A k whose stack passes --max-stack-gb of RSS is stopped and reported as aborted, and no larger k
runs. Prints a table per k, then the growth table: each quantity at every k and its growth
exponent between consecutive ks (log of the ratio over log of the ratio of k; 1 is linear).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` is a folder at the repo root, not an installed package
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.harness import data_file, load, parser, work_dir  # noqa: E402
from bench.scale import report  # noqa: E402
from bench.scale.copies import write_copies  # noqa: E402
from bench.scale.offline import backtest  # noqa: E402
from bench.scale.profiles import hot_functions, recording  # noqa: E402
from bench.scale.sampler import Sampler, cpu_seconds, directory_bytes  # noqa: E402
from bench.scale.stages import MILESTONES, Pipeline, StageFailed  # noqa: E402
from bench.scale.stream import run_stream, stream_orders  # noqa: E402
from bench.scale.supervisor import NAME as SUPERVISOR  # noqa: E402
from bench.scale.supervisor import start_standin, stop_standin  # noqa: E402
from retention_cli.stack import WITH_CONSOLE, Stack, stack_environment  # noqa: E402
from retention_shared.config import Settings  # noqa: E402
from retention_shared.embedded_broker import free_port  # noqa: E402

TENANT = "default"
API_KEY = "bench-scale-key"
BROKER = "broker"
GIB = 1024**3


def parse_args() -> argparse.Namespace:
    cli = parser(__doc__)
    cli.add_argument("--ks", default="1,4,16", help="comma-separated copy counts (default 1,4,16)")
    cli.add_argument("--json", type=Path, default=None, help="also write the results here")
    cli.add_argument("--interval", type=float, default=0.1, help="RSS sampling period, s")
    cli.add_argument("--floor-seconds", type=float, default=4.0, help="empty-stack sampling")
    cli.add_argument("--idle-seconds", type=float, default=16.0, help="idle sampling after")
    cli.add_argument("--timeout", type=float, default=1800.0, help="seconds per k, upload on")
    cli.add_argument(
        "--max-stack-gb", type=float, default=10.0, help="abort a k whose stack passes this RSS"
    )
    cli.add_argument("--no-offline", action="store_true", help="skip `retention backtest`")
    cli.add_argument(
        "--stream-rate", type=float, default=200.0, help="orders/s of the steady stream (0: none)"
    )
    cli.add_argument("--stream-seconds", type=float, default=20.0, help="length of the stream")
    cli.add_argument("--stream-batch", type=int, default=20, help="orders per request")
    cli.add_argument(
        "--from-json", type=Path, default=None, help="print the tables of an earlier --json run"
    )
    cli.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="py-spy binary: record every Python service from upload to scored (implies --keep)",
    )
    args = cli.parse_args()
    args.keep = args.keep or args.py_spy is not None
    return args


def load_1m() -> float:
    return os.getloadavg()[0]


def start_stack(work: Path, log: Any) -> Stack:
    ports = {f"{name}_port": free_port() for name in WITH_CONSOLE}
    settings = Settings(data_dir=work / "data", broker_port=free_port(), **ports)
    settings = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{settings.broker_port}"})
    env = stack_environment(settings, f"{API_KEY}:{TENANT}:admin")
    env.update(
        RETENTION_RETRAIN_EVERY_HOURS="0",
        BENTOML_HOME=str(work / "bentoml"),
        RETENTION_LOG_JSON="true",
    )
    stack = Stack(
        settings,
        env,
        write=lambda line: print(line, file=log, flush=True),
        services=WITH_CONSOLE,
        use_embedded_broker=True,
        supervise=False,  # a crash is a failed measurement, not something to hide
    )
    stack.start(ready_timeout=180)
    return stack


def measure_k(k: int, source: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One k: the k-file, the stack, the pipeline, the idle stack, the offline floor."""
    result: dict[str, Any] = {"k": k, "load_start": load()}
    print(f"\n=== k = {k} (load average {load()}) ===", flush=True)
    begun = time.monotonic()
    copies = write_copies(source, k, work / f"k{k}.parquet")
    result["file"] = asdict(copies) | {"path": str(copies.path)}
    result["file_seconds"] = time.monotonic() - begun
    print(
        f"  k-file: {copies.rows:,} rows, {copies.customers:,} customers, "
        f"{copies.invoices:,} invoices, {copies.bytes / 2**20:.0f} MiB "
        f"({result['file_seconds']:.1f} s, counts checked)",
        flush=True,
    )
    stack_dir = work / f"stack-k{k}"
    stack_dir.mkdir()
    with (stack_dir / "stack.log").open("w") as log:
        begun = time.monotonic()
        stack = start_stack(stack_dir, log)
        try:
            result["stack_start_seconds"] = time.monotonic() - begun
            standin = start_standin()
            try:
                run_pipeline(k, stack, standin.pid, stack_dir, args, result)
            finally:
                stop_standin(standin)
        finally:
            stack.stop()
    if result.get("aborted") is None and not args.no_offline:
        print(f"  offline: retention backtest on the k-file (load {load()}) …", flush=True)
        offline = backtest(copies.path, stack_dir, timeout=args.timeout)
        result["offline"] = asdict(offline) | {"load_end": load()}
        print(
            f"    {offline.seconds:.1f} s, peak {offline.peak_bytes / 2**20:,.0f} MiB"
            + ("" if offline.ok else f" FAILED: {offline.detail[-300:]}"),
            flush=True,
        )
    result["load_end"] = load()
    return result


def run_pipeline(
    k: int,
    stack: Stack,
    supervisor_pid: int,
    stack_dir: Path,
    args: argparse.Namespace,
    result: dict[str, Any],
) -> None:
    assert stack.broker is not None and stack.broker.process is not None
    pids = {BROKER: stack.broker.process.pid} | {s.name: s.process.pid for s in stack.running}
    pids[SUPERVISOR] = supervisor_pid
    names = list(pids)
    sampler = Sampler(pids, interval=args.interval).start()
    try:
        ready = time.monotonic()
        time.sleep(args.floor_seconds)
        result["floor_cpu_per_second"] = {
            name: sampler.cpu_between(name, ready, time.monotonic()) / args.floor_seconds
            for name in names
        }
        floors = {
            name: sampler.mean(name, ready + args.floor_seconds / 2, math.inf) for name in names
        }
        result["floor_bytes"] = floors
        result["floor_pss_bytes"] = {
            name: sampler.mean_pss(name, ready + args.floor_seconds / 2, math.inf) for name in names
        }
        result["load_floor"] = load()
        print(
            "  floors (empty, ready): "
            + ", ".join(f"{n} {v / 2**20:.0f}" for n, v in floors.items())
            + f" MiB; total {sum(floors.values()) / 2**20:,.0f} MiB RSS, "
            + f"{sum(result['floor_pss_bytes'].values()) / 2**20:,.0f} MiB PSS",
            flush=True,
        )
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        pipeline = Pipeline(stack, API_KEY)
        cap = args.max_stack_gb * GIB
        loads: dict[str, float] = {}

        def on_tick() -> None:
            for milestone in pipeline.at:
                loads.setdefault(milestone, load_1m())
            held = sum(sampler.latest(name) for name in names)
            if held > cap:
                raise StageFailed(f"the stack holds {held / GIB:.1f} GiB > {args.max_stack_gb} GiB")

        print(f"  uploading {k}x through ingest (load {load()}) …", flush=True)
        python = {
            name: pid for name, pid in pids.items() if name not in (BROKER, "console", SUPERVISOR)
        }
        try:
            with httpx.Client(timeout=60) as client:
                with recording(args.py_spy, python, stack_dir):
                    pipeline.send(client, Path(result["file"]["path"]))
                    pipeline.follow(client, args.timeout, on_tick=on_tick)
                on_tick()
                scored = time.monotonic()
                cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
                time.sleep(args.idle_seconds)
                idle = {
                    name: sampler.mean(name, scored + args.idle_seconds / 2, math.inf)
                    for name in names
                }
                idle_pss = {
                    name: sampler.mean_pss(name, scored + args.idle_seconds / 2, math.inf)
                    for name in names
                }
                served = pipeline.served_customers(client)
                features_customers = pipeline.features_customers(client)
                if args.stream_rate > 0:
                    result["stream"] = measure_stream(pipeline, client, sampler, args, k)
        except StageFailed as failure:
            result["aborted"] = str(failure)
            print(f"  ABORTED: {failure}", flush=True)
            result["milestones"] = {m: pipeline.elapsed(m) for m in MILESTONES}
            result["peak_bytes"] = {name: sampler.peak(name) for name in names}
            return
    finally:
        sampler.stop()
    start = pipeline.started
    milestone_at = {m: pipeline.at[m] for m in MILESTONES}
    result["milestones"] = {m: pipeline.elapsed(m) for m in MILESTONES}
    result["milestone_load"] = loads
    result["upload"] = pipeline.upload
    result["run"] = {
        key: pipeline.run.get(key)
        for key in ("run_id", "status", "started_at", "finished_at", "timings", "data")
    }
    result["counts"] = pipeline.counts | {
        "scoring_segments_customers": served,
        "features_customers_gauge": features_customers,
    }
    result["cpu_seconds"] = {name: cpu_after[name] - cpu_before[name] for name in names}
    result["peak_bytes"] = {name: sampler.peak(name, start) for name in names}
    result["hwm_bytes"] = sampler.high_water()
    result["idle_bytes"] = idle
    result["idle_pss_bytes"] = idle_pss
    result["peak_pss_bytes"] = {name: sampler.peak_pss(name, start) for name in names}
    pss_total, pss_at = sampler.peak_pss_total(names, start)
    result["peak_pss_total_bytes"] = pss_total
    result["peak_pss_total_at"] = pss_at - start
    result["pss_samples"] = len(sampler.pss_times)
    result["pss_read_seconds"] = sampler.pss_read_seconds
    peak_total, peak_at = sampler.peak_total(names, start)
    services = [n for n in names if n not in (BROKER, SUPERVISOR)]
    result["peak_total_bytes"] = peak_total
    result["peak_total_at"] = peak_at - start
    result["peak_services_bytes"] = sampler.peak_total(services, start)[0]
    result["at_milestone_bytes"] = {
        m: {name: sampler.peak(name, at - args.interval * 1.5, at) for name in names}
        for m, at in milestone_at.items()
    }
    # Which stage was running when each service peaked (the last milestone before the peak).
    result["stage_cpu_seconds"] = {
        m: {name: sampler.cpu_between(name, lo, hi) for name in names}
        for m, lo, hi in report.windows(start, milestone_at)
    }
    result["stage_peaks"] = {
        m: sampler.peak_total(names, lo, hi)[0] for m, lo, hi in report.windows(start, milestone_at)
    }
    result["disk_bytes"] = {
        "features_state": directory_bytes(stack_dir / "data" / "features"),
        "trainer_lake": directory_bytes(stack_dir / "data" / "lake"),
        "trainer_state": directory_bytes(stack_dir / "data" / "trainer"),
        "ingest": directory_bytes(stack_dir / "data" / "ingest"),
        "bentoml": directory_bytes(stack_dir / "bentoml"),
    }
    result["series"] = report.downsample(sampler, start, names)
    if args.py_spy is not None:
        result["hot_functions"] = {
            name: hot_functions(stack_dir / f"py-spy-{name}.txt")
            for name in python
            if (stack_dir / f"py-spy-{name}.txt").exists()
        }


def measure_stream(
    pipeline: Pipeline, client: httpx.Client, sampler: Sampler, args: argparse.Namespace, k: int
) -> dict[str, Any]:
    """The steady stream (stream.py): CPU per order and peak RSS of every process meanwhile."""
    orders = stream_orders(args.source, k, round(args.stream_rate * args.stream_seconds))
    print(
        f"  streaming {len(orders):,} orders at {args.stream_rate:g}/s (load {load()}) …",
        flush=True,
    )
    began = time.monotonic()
    before = {name: cpu_seconds(pid) for name, pid in sampler.pids.items()}
    found = run_stream(pipeline, client, orders, args.stream_rate, args.stream_batch)
    after = {name: cpu_seconds(pid) for name, pid in sampler.pids.items()}
    print(
        f"    sent in {found.seconds:.1f} s ({found.late_ticks} late ticks), settled after "
        f"{found.settled_seconds:.1f} s",
        flush=True,
    )
    return asdict(found) | {
        "rate": args.stream_rate,
        "batch": args.stream_batch,
        "load": load(),
        "cpu_seconds": {name: after[name] - before[name] for name in before},
        "peak_bytes": {name: sampler.peak(name, began) for name in sampler.pids},
    }


def main() -> int:
    args = parse_args()
    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
        for result in results:
            print(report.k_table(result))
        print(report.growth_table(results))
        return 0
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    source = args.source = data_file(args.data)
    print(f"data: {source}; ks: {ks}")
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs (other work skews these)")
    began = time.monotonic()
    results: list[dict[str, Any]] = []
    with work_dir("scale", args.keep) as work:
        for k in ks:
            try:
                results.append(measure_k(k, source, work, args))
            finally:
                if args.json:  # after every k: a long run that fails later keeps what it had
                    args.json.write_text(json.dumps(results, indent=1, default=str))
            print(report.k_table(results[-1]), flush=True)
            if results[-1].get("aborted"):
                print(f"k = {k} aborted: larger ks are not run")
                break
    print(report.growth_table(results))
    print(f"\nwhole benchmark: {time.monotonic() - began:.0f} s; load average now: {load()}")
    return 0 if all(not r.get("aborted") for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
