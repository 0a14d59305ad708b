"""The tables bench/scale prints: one per k, then how each quantity grows with k."""

from __future__ import annotations

import itertools
import math
from typing import Any

from bench.harness import table
from bench.scale.sampler import Sampler

MIB = 1024 * 1024
STAGES = {
    "ingested": "upload → ingested (every event acknowledged)",
    "features": "features caught up (lag 0)",
    "trained": "training run published",
    "served": "champion served by scoring",
    "materialized": "scoring holds every vector",
    "scored": "every customer scored (end to end)",
}
# The targets of issue 18.
E2E_EXPONENT, MEMORY_EXPONENT = 1.05, 1.05
IDLE_1X_GIB, PEAK_1X_GIB, PEAK_16X_GIB, E2E_16X_SECONDS = 1.0, 1.5, 6.0, 600.0


def windows(start: float, at: dict[str, float]) -> list[tuple[str, float, float]]:
    """(milestone, from, to): the span that ends at each milestone, in time order."""
    spans, previous = [], start
    for name, moment in sorted(at.items(), key=lambda item: item[1]):
        spans.append((name, previous, moment))
        previous = moment
    return spans


def downsample(sampler: Sampler, start: float, names: list[str]) -> dict[str, list[float]]:
    """RSS in MiB per second since `start` (the max of each second), per process."""
    seconds: dict[int, dict[str, int]] = {}
    for i, moment in enumerate(sampler.times):
        if moment < start:
            continue
        bucket = seconds.setdefault(int(moment - start), {})
        for name in names:
            bucket[name] = max(bucket.get(name, 0), sampler.series[name][i])
    last = max(seconds, default=-1)
    return {
        name: [round(seconds.get(s, {}).get(name, 0) / MIB, 1) for s in range(last + 1)]
        for name in names
    }


def pss_total(r: dict[str, Any], key: str) -> float | None:
    """The sum of a per-process PSS mapping (`floor_pss_bytes`, `idle_pss_bytes`), or None for
    a run from before PSS was sampled."""
    values = r.get(key)
    return sum(values.values()) if values else None


def judged(r: dict[str, Any]) -> tuple[float, float, str]:
    """(stack idle after, stack peak, measure) as the targets are judged: on the PSS sum (what
    the machine holds: a shared page counted once), or the RSS sum for an older run."""
    idle_pss = pss_total(r, "idle_pss_bytes")
    if idle_pss is not None and r.get("peak_pss_total_bytes"):
        return idle_pss, r["peak_pss_total_bytes"], "PSS"
    return sum(r["idle_bytes"].values()), r["peak_total_bytes"], "RSS"


def work_cpu(r: dict[str, Any], name: str) -> float:
    """A process' CPU seconds from upload to scored less what it spends doing nothing (its idle
    CPU rate on the empty stack: consumers polling the broker), taken stage by stage and
    floored at 0 per stage, so a stage it sat out costs nothing: the work."""
    idle = (r.get("floor_cpu_per_second") or {}).get(name, 0.0)
    stage_cpu = r.get("stage_cpu_seconds") or {}
    if not stage_cpu:
        return r["cpu_seconds"][name]
    ends = sorted(r["milestones"].items(), key=lambda item: item[1])
    work, previous = 0.0, 0.0
    for milestone, end in ends:
        spent = stage_cpu.get(milestone, {}).get(name, 0.0)
        work += max(0.0, spent - idle * (end - previous))
        previous = end
    return work


def stream_work(r: dict[str, Any], name: str) -> float:
    """The stream's CPU seconds of a process less its idle rate over the settling time."""
    stream = r["stream"]
    idle = (r.get("floor_cpu_per_second") or {}).get(name, 0.0)
    return max(0.0, stream["cpu_seconds"][name] - idle * stream["settled_seconds"])


def mib(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value / MIB:,.0f}"


def exponent(k1: int, v1: float | None, k2: int, v2: float | None) -> float:
    if not v1 or not v2 or v1 <= 0 or v2 <= 0 or k1 == k2:
        return math.nan
    return math.log(v2 / v1) / math.log(k2 / k1)


def k_table(r: dict[str, Any]) -> str:
    k = r["k"]
    lines = [f"\n--- k = {k}: load average {r['load_start']} at start, {r['load_end']} at end ---"]
    if r.get("aborted"):
        reached = {m: s for m, s in r.get("milestones", {}).items() if not math.isnan(s)}
        peaks = ", ".join(f"{n} {mib(v)}" for n, v in r.get("peak_bytes", {}).items())
        return "\n".join([*lines, f"ABORTED: {r['aborted']}", f"reached: {reached}", peaks])
    upload, milestones = r["upload"], r["milestones"]
    rows, customers, orders = upload["rows_read"], upload["customers"], upload["order_events"]
    e2e = milestones["scored"]
    loads = r.get("milestone_load", {})
    stage_rows = [
        (
            "data",
            f"{rows:,} rows",
            f"{upload['accepted']:,} accepted, {orders:,} orders, {customers:,} customers",
        )
    ]
    for name, what in STAGES.items():
        stage_rows.append(
            (
                name,
                f"{milestones[name]:.1f} s",
                f"{what}; load {loads.get(name, math.nan):.1f}; stack peak in the stage "
                f"{mib(r['stage_peaks'].get(name) or math.nan)} MiB",
            )
        )
    run = r.get("run") or {}
    timings = run.get("timings") or {}
    if timings:
        stages = ", ".join(f"{n} {s:.1f}" for n, s in timings.items())
        stage_rows.append(("trainer run", f"{sum(timings.values()):.1f} s", stages))
    stage_rows += [
        (
            "rows/s",
            f"{rows / e2e:,.0f}",
            f"end to end; ingest alone {rows / milestones['ingested']:,.0f}",
        ),
        (
            "customers/s",
            f"{customers / e2e:,.0f}",
            f"end to end; orders/s {orders / e2e:,.0f}",
        ),
        (
            "stack peak",
            f"{mib(r['peak_total_bytes'])} MiB",
            f"sum of the processes at one moment ({r['peak_total_at']:.0f} s in); "
            f"services without the broker {mib(r['peak_services_bytes'])} MiB",
        ),
        (
            "stack idle after",
            f"{mib(sum(r['idle_bytes'].values()))} MiB",
            f"floors (empty stack) {mib(sum(r['floor_bytes'].values()))} MiB",
        ),
    ]
    if r.get("peak_pss_total_bytes"):
        stage_rows += [
            (
                "stack peak, PSS",
                f"{mib(r['peak_pss_total_bytes'])} MiB",
                f"sum of PSS at one moment ({r['peak_pss_total_at']:.0f} s in; "
                f"{r['pss_samples']:,} PSS samples, {r['pss_read_seconds']:.1f} CPU s to read)",
            ),
            (
                "stack idle, PSS",
                f"{mib(pss_total(r, 'idle_pss_bytes'))} MiB",
                f"floors (empty stack) {mib(pss_total(r, 'floor_pss_bytes'))} MiB PSS; the "
                "targets are judged on PSS (a page mapped by several processes counted once)",
            ),
        ]
    offline = r.get("offline")
    if offline:
        stage_rows.append(
            (
                "offline backtest",
                f"{offline['seconds']:.1f} s",
                f"retention backtest on the k-file, peak {mib(offline['peak_bytes'])} MiB, "
                f"{offline['cpu_seconds']:.0f} CPU s, churn AUC {offline['churn_auc']}; "
                f"end to end / offline {e2e / offline['seconds']:.2f}x",
            )
        )
    counts = r["counts"]
    stage_rows.append(
        (
            "checks",
            "ok" if counts["scoring_segments_customers"] == customers else "MISMATCH",
            f"scoring's segments count {counts['scoring_segments_customers']:,.0f} of "
            f"{customers:,} customers; {counts['scores_published']:,.0f} first scores; "
            f"features gauge {counts['features_customers_gauge']:,.0f}; "
            f"{counts['features_vectors_published']:,.0f} vectors published",
        )
    )
    lines.append(table(stage_rows))
    header = (
        f"{'process':<9} {'floor':>6} {'peak':>6} {'VmHWM':>6} {'idle':>6} {'idle-floor':>10}"
        f" {'CPU s':>7} {'idle CPU %':>10} {'work CPU s':>10} {'ms/order':>8} {'ms/cust':>8}"
        f" {'B/customer':>10} {'PSS floor':>9} {'PSS peak':>8} {'PSS idle':>8}"
    )
    lines += [
        "",
        "memory in MiB; B/customer = (idle - floor) / customers; idle CPU % = of one core on the",
        "empty stack; work CPU s = CPU s less idle CPU x each stage's time (floored at 0 per",
        "stage); per order and per customer: of the work; PSS: shared pages split among the",
        "processes that map them (peak: of the PSS samples)",
        header,
    ]
    idle_cpu = r.get("floor_cpu_per_second") or {}
    pss_floor, pss_idle = r.get("floor_pss_bytes") or {}, r.get("idle_pss_bytes") or {}
    pss_peak = r.get("peak_pss_bytes") or {}
    for name in r["floor_bytes"]:
        floor, idle = r["floor_bytes"][name], r["idle_bytes"][name]
        cpu = r["cpu_seconds"][name]
        work = work_cpu(r, name)
        lines.append(
            f"{name:<9} {mib(floor):>6} {mib(r['peak_bytes'][name]):>6} "
            f"{mib(r['hwm_bytes'][name]):>6} {mib(idle):>6} {mib(idle - floor):>10} "
            f"{cpu:>7.1f} {idle_cpu.get(name, math.nan) * 100:>10.1f} {work:>10.1f} "
            f"{work / orders * 1e3:>8.3f} {work / customers * 1e3:>8.2f} "
            f"{(idle - floor) / customers:>10,.0f} {mib(pss_floor.get(name)):>9} "
            f"{mib(pss_peak.get(name)):>8} {mib(pss_idle.get(name)):>8}"
        )
    stage_cpu = r.get("stage_cpu_seconds") or {}
    if stage_cpu:
        spans = list(stage_cpu)
        lines += ["", "CPU seconds by stage (each column: since the milestone before it)"]
        lines.append(f"{'process':<9}" + "".join(f"{span:>13}" for span in spans))
        for name in r["floor_bytes"]:
            lines.append(
                f"{name:<9}" + "".join(f"{stage_cpu[span][name]:>13.1f}" for span in spans)
            )
    stream = r.get("stream")
    if stream:
        lines += [
            "",
            f"steady stream: {stream['accepted']:,} orders at {stream['rate']:g}/s, "
            f"{stream.get('batch', 20)} a request, sent in "
            f"{stream['seconds']:.1f} s ({stream['late_ticks']} late ticks), settled after "
            f"{stream['settled_seconds']:.1f} s; load {stream['load']}",
            "  CPU ms per streamed order (less idle CPU over the settling time): "
            + ", ".join(
                f"{name} {stream_work(r, name) / max(stream['accepted'], 1) * 1e3:.2f}"
                for name in stream["cpu_seconds"]
            ),
        ]
    disk = r["disk_bytes"]
    lines.append(
        f"disk: features state {mib(disk['features_state'])} MiB "
        f"({disk['features_state'] / customers:,.0f} B/customer, "
        f"{disk['features_state'] / orders:,.0f} B/order); trainer lake "
        f"{mib(disk['trainer_lake'])} MiB ({disk['trainer_lake'] / orders:,.0f} B/order); "
        f"models {mib(disk['bentoml'])} MiB"
    )
    for name, hot in (r.get("hot_functions") or {}).items():
        lines += ["", f"py-spy, {name}: share of samples on the stack (self)"]
        lines += [f"  {share:6.1%} ({own:6.1%})  {frame[:150]}" for frame, share, own in hot]
    return "\n".join(lines)


def _quantities(r: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """name → (value, unit) of the quantities the growth table follows."""
    if r.get("aborted"):
        return {}
    found: dict[str, tuple[float, str]] = {}
    for name in STAGES:
        found[f"time: {name}"] = (r["milestones"][name], "s")
    timings = (r.get("run") or {}).get("timings") or {}
    if timings:
        found["time: trainer run"] = (sum(timings.values()), "s")
    found["memory: stack peak"] = (r["peak_total_bytes"] / MIB, "MiB")
    found["memory: services peak"] = (r["peak_services_bytes"] / MIB, "MiB")
    found["memory: stack idle after"] = (sum(r["idle_bytes"].values()) / MIB, "MiB")
    if r.get("peak_pss_total_bytes"):
        found["memory: stack peak PSS"] = (r["peak_pss_total_bytes"] / MIB, "MiB")
        found["memory: stack idle PSS"] = ((pss_total(r, "idle_pss_bytes") or 0) / MIB, "MiB")
    for name, value in r["peak_bytes"].items():
        found[f"peak RSS: {name}"] = (value / MIB, "MiB")
    for name, value in r["idle_bytes"].items():
        found[f"idle - floor: {name}"] = ((value - r["floor_bytes"][name]) / MIB, "MiB")
    for name, value in r["cpu_seconds"].items():
        found[f"CPU: {name}"] = (value, "s")
        found[f"work CPU: {name}"] = (work_cpu(r, name), "s")
    stream = r.get("stream")
    if stream and stream["accepted"]:
        found["stream: settled"] = (stream["settled_seconds"], "s")
        for name in stream["cpu_seconds"]:
            found[f"stream CPU/order: {name}"] = (
                stream_work(r, name) / stream["accepted"] * 1e3,
                "ms",
            )
    offline = r.get("offline")
    if offline and offline["ok"]:
        found["offline backtest: time"] = (offline["seconds"], "s")
        found["offline backtest: peak"] = (offline["peak_bytes"] / MIB, "MiB")
    return found


def growth_table(results: list[dict[str, Any]]) -> str:
    done = [r for r in results if not r.get("aborted")]
    if not done:
        return "\nno k finished: no growth table"
    ks = [r["k"] for r in done]
    values = [_quantities(r) for r in done]
    names = list(values[0])
    pairs = list(itertools.pairwise(ks))
    head = f"{'quantity':<30}" + "".join(f"{'k=' + str(k):>10}" for k in ks)
    head += "".join(f"{f'exp {a}→{b}':>11}" for a, b in pairs)
    lines = ["\ngrowth with k (exponent = slope of log value against log k; 1 = linear)", head]
    for name in names:
        cells = [v.get(name, (math.nan, ""))[0] for v in values]
        unit = values[0][name][1]
        line = f"{name + ' (' + unit + ')':<30}" + "".join(f"{c:>10,.1f}" for c in cells)
        for (a, b), (ca, cb) in zip(pairs, itertools.pairwise(cells), strict=True):
            line += f"{exponent(a, ca, b, cb):>11.2f}"
        lines.append(line)
    lines.append(_verdicts(done))
    return "\n".join(lines)


def _verdicts(done: list[dict[str, Any]]) -> str:
    by_k = {r["k"]: r for r in done}
    lines = ["", "issue 18 targets:"]
    if 1 in by_k:
        r = by_k[1]
        idle_bytes, peak_bytes, measure = judged(r)
        idle, peak = idle_bytes / 1024**3, peak_bytes / 1024**3
        lines.append(
            f"  1x idle {idle:.2f} GiB (< {IDLE_1X_GIB}: {'meets' if idle < IDLE_1X_GIB else 'MISSES'})"
            f", 1x peak {peak:.2f} GiB (< {PEAK_1X_GIB}: "
            f"{'meets' if peak < PEAK_1X_GIB else 'MISSES'}), sums of {measure}"
            + (
                f" (sums of RSS: idle {sum(r['idle_bytes'].values()) / 1024**3:.2f}, "
                f"peak {r['peak_total_bytes'] / 1024**3:.2f} GiB)"
                if measure == "PSS"
                else ""
            )
        )
    if 4 in by_k and 16 in by_k:
        a, b = by_k[4], by_k[16]
        e2e = exponent(4, a["milestones"]["scored"], 16, b["milestones"]["scored"])
        memory = exponent(4, judged(a)[1], 16, judged(b)[1])
        lines.append(
            f"  4→16 exponent: end to end {e2e:.2f}, peak memory {memory:.2f} (≤ {E2E_EXPONENT}: "
            f"{'meets' if e2e <= E2E_EXPONENT and memory <= MEMORY_EXPONENT else 'MISSES'})"
        )
    if 16 in by_k:
        r = by_k[16]
        e2e, peak = r["milestones"]["scored"], judged(r)[1] / 1024**3
        ok = e2e < E2E_16X_SECONDS and peak < PEAK_16X_GIB
        lines.append(
            f"  16x end to end {e2e:.0f} s (< {E2E_16X_SECONDS:.0f}), peak {peak:.2f} GiB "
            f"(< {PEAK_16X_GIB}): {'meets' if ok else 'MISSES'}"
        )
    return "\n".join(lines)
