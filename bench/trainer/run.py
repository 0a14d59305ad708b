"""bench/trainer: wall time of each stage of a full training run, from the lake to the store.

Run from the repository root:

    uv run python bench/trainer/run.py             # about 2 minutes on a 2-core machine

What it does, in one process:

1. Cleans `online_retail_II` with the same reading and cleaning as `retention backtest`
   (`retention_ingest.file_ingest.ingest_file`, tenant "backtest", Europe/London) and writes the
   `OrderEvent` columns into a local `TransactionLake` in a temporary directory as the trainer's
   consumer would: `append` in batches of --batch events (one part per tenant and month of each
   batch), then `compact`. Not timed (printed for information).
2. Reads, --runs times (median kept), interleaved:
   - bare scan: `pl.scan_parquet(<every part file>).collect()`, all columns, no dedup — the
     baseline issue 5 names;
   - lake read: `lake.orders(tenant)`: list the parts, read the order columns (each order's
     stored `items` and `products`, not its lines), keep the first copy of each event id;
   - training sets: `training_examples(orders, cutoffs)`, the run's `training_sets` stage alone
     (features by the shared definition and labels at every cutoff the run uses);
   - bare features query: the same parquet scan, then one polars query doing the least work
     analogous to building training sets — for every cutoff the run uses, per customer, count,
     sum of totals and latest time of the orders up to the cutoff.
3. One full `train_and_backtest` on the lake's orders frame, defaults as `retention backtest`
   (churn test cutoff 2011-09-10, LTV 2011-06-12 on this file, three earlier origins 30 days
   apart and the bootstrap intervals: RETENTION_TRAINER_ROLLING_ORIGINS' default), with the
   run's own stage timings (`TrainingRun.timings`) and its wall time.
4. The production refit a promoted run gets (`retention_trainer.refit.refit_for_production`),
   then `save_bundle` of the refitted bundle into a temporary BentoML store (BENTOML_HOME).

Prints every stage's wall time and share of the total, the total against the 2-minute target,
and training-set building (lake read + training sets, medians) against both baselines; the 3x
target of issue 5 is against the bare scan. See bench/README.md for what each ratio means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` is a folder at the repo root, not an installed package
    sys.path.insert(0, str(REPO))

from bench.harness import data_file  # noqa: E402

TENANT = "backtest"  # as `retention backtest`
TIMEZONE = "Europe/London"
TOTAL_TARGET_SECONDS = 120.0
TRAINING_SET_TARGET_RATIO = 3.0
TRAINING_STAGES = (
    "training_sets",
    "churn",
    "ltv",
    "baselines",
    "rolling_origin",
    "bootstrap",
    "orders",
    "segments",
    "bundle",
)


def _timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cutoffs(orders: object, every_days: int, rolling_origins: int) -> list[date]:
    """The cutoffs `train_and_backtest` builds training sets at (with its defaults)."""
    from retention_trainer.pipeline import ORIGIN_EVERY_DAYS, rolling_plans
    from retention_trainer.training_set import CHURN_HORIZON_DAYS, LTV_HORIZON_DAYS

    return sorted(
        {
            cutoff
            for task, horizon in (("churn", CHURN_HORIZON_DAYS), ("ltv", LTV_HORIZON_DAYS))
            for plan in rolling_plans(
                orders,
                task=task,
                horizon_days=horizon,
                test_cutoff=None,
                every_days=every_days,
                rolling_origins=rolling_origins,
                origin_every_days=ORIGIN_EVERY_DAYS,
            )
            for cutoff in plan.all_cutoffs
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a UCI Online Retail Parquet file")
    parser.add_argument("--runs", type=int, default=9, help="rounds of the four reads (median)")
    parser.add_argument("--batch", type=int, default=1000, help="events per lake append")
    parser.add_argument(
        "--compact-min-parts", type=int, default=2, help="compact months with this many parts"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--profile", type=Path, help="cProfile the training run into this file")
    args = parser.parse_args()

    data = data_file(args.data)
    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    try:
        return _bench(args, data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(args: argparse.Namespace, data: Path, work: Path) -> int:
    # BentoML reads its home once, when first imported: set it before anything imports it.
    os.environ["BENTOML_HOME"] = str(work / "bentoml")

    import polars as pl

    from retention_bundle.model_store import save_bundle
    from retention_ingest.file_ingest import ingest_file
    from retention_trainer.lake import TransactionLake
    from retention_trainer.pipeline import ROLLING_ORIGINS, train_and_backtest
    from retention_trainer.refit import refit_for_production
    from retention_trainer.training_set import (
        CUTOFF_EVERY_DAYS,
        cutoff_instant,
        training_examples,
    )

    print(f"bench/trainer: {data}  (cpus {os.cpu_count()}, load average at start {_load()})")
    # OpenMP's spin-waiting (XGBoost, scikit-learn's k-means) turns other load on the cores
    # into a many-fold slowdown of model fitting; say which policy this run had.
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: spin, then sleep)')}")

    # 1. Clean as `retention backtest` does, then fill the lake as the consumer would.
    seconds, cleaned = _timed(
        lambda: ingest_file(
            data, tenant_id=TENANT, source="backtest", work_dir=work / "ingest", timezone=TIMEZONE
        )
    )
    events = cleaned.events().collect()
    print(
        f"cleaned {cleaned.rows_read:,} rows → {events.height:,} order events of "
        f"{cleaned.customers:,} customers in {seconds:.1f} s (not timed below)"
    )
    lake = TransactionLake(work / "lake")
    start = time.perf_counter()
    for offset in range(0, events.height, args.batch):
        lake.append(events.slice(offset, args.batch))
    appended = time.perf_counter() - start
    parts_before = len(list((work / "lake").rglob("part-*.parquet")))
    start = time.perf_counter()
    compacted = lake.compact(TENANT, min_parts=args.compact_min_parts)
    compact_seconds = time.perf_counter() - start
    files = sorted((work / "lake").rglob("part-*.parquet"))
    print(
        f"lake: {-(-events.height // args.batch)} appends of ≤{args.batch:,} events → "
        f"{parts_before} parts in {appended:.1f} s; compacted {compacted} months in "
        f"{compact_seconds:.1f} s → {len(files)} parts, {lake.size_bytes(TENANT) / 1e6:.1f} MB"
    )

    # 2. The four reads, interleaved so that a change in machine load hits them alike.
    orders = lake.orders(TENANT)
    cutoffs = _cutoffs(orders, CUTOFF_EVERY_DAYS, rolling_origins=ROLLING_ORIGINS)
    instants = pl.DataFrame(
        {"cutoff": [cutoff_instant(c) for c in cutoffs]},
        schema={"cutoff": pl.Datetime("us", "UTC")},
    ).lazy()

    def bare_scan() -> pl.DataFrame:
        return pl.scan_parquet(files).collect()

    def lake_read() -> pl.DataFrame:
        return lake.orders(TENANT)

    def bare_features() -> pl.DataFrame:
        # Per cutoff and customer: orders up to the cutoff, their net total, the latest one.
        return (
            pl.scan_parquet(files)
            .select("customer_id", "occurred_at", "total")
            .join(instants, how="cross")
            .filter(pl.col("occurred_at") <= pl.col("cutoff"))
            .group_by("cutoff", "customer_id")
            .agg(
                orders=pl.len(),
                spend=pl.col("total").sum(),
                last=pl.col("occurred_at").max(),
            )
            .collect()
        )

    def training_sets() -> pl.DataFrame:
        return training_examples(orders, cutoffs)

    contenders = {
        "bare_scan": bare_scan,
        "lake_read": lake_read,
        "training_sets": training_sets,
        "bare_features": bare_features,
    }
    reads: dict[str, list[float]] = {name: [] for name in contenders}
    sizes: dict[str, int] = {}
    for _ in range(args.runs):
        for name, action in contenders.items():
            seconds, frame = _timed(action)
            reads[name].append(seconds)
            sizes[name] = frame.height  # type: ignore[attr-defined]
    read = {name: statistics.median(times) for name, times in reads.items()}
    assert sizes["bare_scan"] == events.height and sizes["lake_read"] == orders.height

    # 3. The full run, and 4. the bundle into the store.
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    run = train_and_backtest(orders, tenant=TENANT, rolling_origins=ROLLING_ORIGINS)
    run_wall = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    # A promoted run's `refit` stage: the bundle stored is the refitted one.
    refit_seconds, served = _timed(lambda: refit_for_production(run, orders))
    save_seconds, model = _timed(lambda: save_bundle(served))

    stages = {"lake read (lake.orders)": read["lake_read"]}
    stages.update({name: run.timings.get(name, 0.0) for name in TRAINING_STAGES})
    # Work between the run's stages (planning windows) counts too; it is tiny.
    stages["(outside stages)"] = max(run_wall - run.timings["total"], 0.0)
    stages["refit (promoted run)"] = refit_seconds
    stages["save_bundle (BentoML store)"] = save_seconds
    total = sum(stages.values())

    print(f"\nfull run, tenant {TENANT!r}: {orders.height:,} orders, {len(cutoffs)} cutoffs")
    print(f"{'stage':<30}{'seconds':>9}{'share':>8}")
    for name, seconds in stages.items():
        print(f"{name:<30}{seconds:>9.2f}{seconds / total:>8.1%}")
    verdict = "meets" if total <= TOTAL_TARGET_SECONDS else "MISSES"
    print(f"{'total':<30}{total:>9.2f}   target < {TOTAL_TARGET_SECONDS:.0f} s: {verdict}")

    # Medians of the repeated reads and training-set builds: one build inside the run is noisy.
    building = read["lake_read"] + read["training_sets"]
    scan_ratio = building / read["bare_scan"]
    features_ratio = building / read["bare_features"]
    print(
        f"\ntraining-set building = lake read {read['lake_read'] * 1000:.0f} ms + training_sets "
        f"{read['training_sets'] * 1000:.0f} ms = {building * 1000:.0f} ms "
        f"(medians of {args.runs}; {sizes['training_sets']:,} examples)"
    )
    print(
        f"  vs bare scan of the lake {read['bare_scan'] * 1000:.0f} ms: {scan_ratio:.1f}x  "
        f"(target ≤ {TRAINING_SET_TARGET_RATIO:.0f}x: "
        f"{'meets' if scan_ratio <= TRAINING_SET_TARGET_RATIO else 'MISSES'})"
    )
    print(
        f"  vs bare features query ({len(cutoffs)} cutoffs × count/sum/max per customer, "
        f"{sizes['bare_features']:,} rows) {read['bare_features'] * 1000:.0f} ms: "
        f"{features_ratio:.1f}x"
    )
    churn, ltv = run.report.churn.model, run.report.ltv.model
    print(
        f"\nrun checks: churn ROC-AUC {churn.roc_auc:.3f}, LTV Spearman {ltv.spearman:.3f}, "
        f"model {model.tag}; load average at end {_load()}"
    )

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "measured_at": datetime.now(UTC).isoformat(),
                    "data": str(data),
                    "orders": orders.height,
                    "events": events.height,
                    "lake_parts": len(files),
                    "cutoffs": [c.isoformat() for c in cutoffs],
                    "reads_seconds": reads,
                    "stages_seconds": stages,
                    "total_seconds": total,
                    "training_set_building_seconds": building,
                    "ratio_to_bare_scan": scan_ratio,
                    "ratio_to_bare_features": features_ratio,
                    "run_timings": run.timings,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
