"""bench/trainer/sampling.py: a training run with and without the customer cap, side by side.

Run from the repository root:

    uv run python bench/trainer/sampling.py --caps 0 3000 --whole 3000  # ~6 min, loaded 2 cores

Cleans `online_retail_II` once as `retention backtest` does (tenant "backtest", Europe/London),
keeps the orders frame in a temporary Parquet file, then for each cap starts a fresh Python
process that reads it and runs `train_and_backtest(orders, max_customers=cap)` (the
`retention backtest` defaults: three earlier origins, bootstrap) plus the production refit.
Per cap it prints the stage timings, the wall time, the process' peak RSS above the RSS right
after reading the orders (what the run itself added), and churn ROC-AUC / ECE and LTV Spearman at
the test cutoff and as means over the rolling origins. `--whole CAP` also runs the alternative
the trainer does not take, evaluation on the sample too, for its cost. Numbers are in docs/trainer.md,
"Customer sampling". Each cap runs in its own process so one run's peak does not hide another's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` is a folder at the repo root, not an installed package
    sys.path.insert(0, str(REPO))

from bench.harness import data_file  # noqa: E402

TENANT = "backtest"


def _status_mib(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process. Not ru_maxrss: Linux carries that over
    fork and exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _one_run(orders_path: Path, cap: int, whole: bool) -> dict[str, object]:
    """In the child: one run at `cap` on the cleaned orders; the readings as JSON. `whole`: the
    alternative not taken, evaluation on the sample too (the whole run on the sampled orders)."""
    import polars as pl

    from retention_trainer.pipeline import ROLLING_ORIGINS, train_and_backtest
    from retention_trainer.refit import refit_for_production
    from retention_trainer.sampling import sample_customers, sampled_orders

    orders = pl.read_parquet(orders_path)
    if whole:
        orders = sampled_orders(orders, sample_customers(orders, TENANT, cap)[0])
    floor = _status_mib("VmRSS")
    cpu = _cpu_seconds()
    start = time.perf_counter()
    run = train_and_backtest(
        orders, tenant=TENANT, rolling_origins=ROLLING_ORIGINS, max_customers=0 if whole else cap
    )
    trained = time.perf_counter()
    served = refit_for_production(run, orders)
    assert served.production is not None
    report = run.report.as_json()
    rolling = report["rolling"]["metrics"]
    return {
        "cap": cap,
        "evaluated_on": "sample" if whole else "everyone",
        "sampling": report["sampling"],
        "timings": run.timings,
        "refit_seconds": time.perf_counter() - trained,
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": _cpu_seconds() - cpu,
        "peak_rss_above_orders_mib": _status_mib("VmHWM") - floor,
        "peak_rss_mib": _status_mib("VmHWM"),
        "churn_training_rows": report["churn"]["training_rows"],
        "ltv_training_rows": report["ltv"]["training_rows"],
        "churn_test_customers": report["churn"]["test_customers"],
        "churn_roc_auc": report["churn"]["model"]["roc_auc"],
        "churn_ece": report["churn"]["expected_calibration_error"],
        "ltv_spearman": report["ltv"]["model"]["spearman"],
        "rolling_churn_roc_auc": rolling["churn"]["roc_auc"]["model_mean"],
        "rolling_churn_ece": rolling["churn"]["ece"]["model_mean"],
        "rolling_ltv_spearman": rolling["ltv"]["spearman"]["model_mean"],
        "load": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a UCI Online Retail Parquet file")
    parser.add_argument("--caps", type=int, nargs="+", default=[0, 3000], help="0: no cap")
    parser.add_argument(
        "--whole", type=int, nargs="*", default=[], help="caps to also run entirely on the sample"
    )
    parser.add_argument("--whole-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("ORDERS", "CAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one_run(Path(args.child[0]), int(args.child[1]), args.whole_child)))
        return 0

    from retention_ingest.file_ingest import ingest_file
    from retention_shared.features import orders_from_event_columns

    work = Path(tempfile.mkdtemp(prefix="bench-sampling-"))
    try:
        cleaned = ingest_file(
            data_file(args.data),
            tenant_id=TENANT,
            source="bench",
            work_dir=work,
            timezone="Europe/London",
        )
        orders = orders_from_event_columns(cleaned.events())
        orders_path = work / "orders.parquet"
        orders.write_parquet(orders_path)
        print(f"{orders.height:,} orders of {orders['customer_id'].n_unique():,} customers")
        results = []
        runs = [(cap, []) for cap in args.caps] + [(cap, ["--whole-child"]) for cap in args.whole]
        for cap, whole in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(orders_path), str(cap), *whole],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = results[0]
    for r in results[1:]:
        print(
            f"cap {r['cap']} (evaluated on {r['evaluated_on']}) vs cap {base['cap']}: wall "
            f"{r['wall_seconds']:.0f} / {base['wall_seconds']:.0f} s, CPU {r['cpu_seconds']:.0f} / "
            f"{base['cpu_seconds']:.0f} s, peak above orders {r['peak_rss_above_orders_mib']:.0f}"
            f" / {base['peak_rss_above_orders_mib']:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
