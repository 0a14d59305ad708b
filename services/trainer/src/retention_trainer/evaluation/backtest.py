"""Backtest reports: the models next to the baselines on the test cutoff and over the rolling
origins (with the paired bootstrap intervals): the churn metrics a report holds, and the report
(`retention_bundle.backtest_report.BacktestReport`) as Markdown."""

from __future__ import annotations

import math
from datetime import date

import numpy as np

from retention_bundle.backtest_report import (
    BacktestReport,
    ChurnBacktest,
    LTVBacktest,
    RollingEvaluation,
)
from retention_trainer.evaluation.metrics import (
    CHURN_METRIC_KEYS,
    LTV_METRIC_KEYS,
    churn_metrics,
    roc_auc,
)
from retention_trainer.evaluation.quality_markdown import quality_sections
from retention_trainer.sampling import describe_sampling

__all__ = ["churn_report", "interval_lines", "render_markdown", "rolling_table"]


def churn_report(
    y: np.ndarray, probability: np.ndarray, threshold: float, active: np.ndarray
) -> dict[str, float]:
    """``churn_metrics`` plus ``roc_auc_active_365d``: ROC-AUC among customers with a purchase in
    the last 365 days (long-dormant customers are easy and inflate the overall AUC)."""
    metrics = churn_metrics(y, probability, threshold)
    try:
        metrics["roc_auc_active_365d"] = roc_auc(y[active], probability[active])
    except ValueError:
        metrics["roc_auc_active_365d"] = float("nan")
    return metrics


def _fmt(value: object) -> str:
    if value is None:  # a metric the data could not define
        return "–"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _table(section: ChurnBacktest | LTVBacktest, keys: tuple[str, ...]) -> list[str]:
    lines = ["| model | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
    rows = {"**model**": section.model, **section.baselines}
    for name, metrics in rows.items():
        cells = (_fmt(getattr(metrics, k, "")) for k in keys)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _signed(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+,.4f}" if abs(value) < 100 else f"{value:+,.1f}"


def _dates(values: list[date]) -> str:
    return ", ".join(d.isoformat() for d in values)


def rolling_table(rolling: RollingEvaluation) -> list[str]:
    """The ``rolling`` block as a compact Markdown table: per task and metric, the model's mean
    over the origins, the best baseline and its mean, their difference and its 90% interval."""
    lines = [
        f"Origins {rolling.origin_every_days} days apart: churn "
        f"{_dates(rolling.origins.churn)}; LTV {_dates(rolling.origins.ltv)}. "
        f"Difference = model − best baseline (mean over origins); 90% interval from "
        f"{rolling.resamples} paired bootstrap resamples of the customers (seed "
        f"{rolling.seed}).",
        "",
        "| task | metric | model | best baseline | baseline | difference | 90% interval | reading |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, metrics in rolling.metrics.items():
        for name, entry in metrics.items():
            best = entry.best_baseline
            low, high = entry.diff_interval_90
            lines.append(
                f"| {task} | {name}{'' if entry.higher_is_better else ' (lower is better)'} | "
                f"{_fmt(entry.model_mean)} | {best or '–'} | "
                f"{_fmt(entry.baselines[best]) if best else '–'} | "
                f"{_signed(entry.diff_mean)} | [{_signed(low)}, {_signed(high)}] | "
                f"{entry.verdict} |"
            )
    return lines


def interval_lines(report: BacktestReport) -> list[str]:
    """The LTV 80% interval: coverage (about 80% of customers' actual spend should fall inside)
    and median width, at the test cutoff and at each rolling origin; nothing for reports before
    it."""
    ltv = report.ltv
    if ltv.interval is None or ltv.interval_coverage_80 is None:
        return []
    line = (
        f"LTV 80% interval ({ltv.interval.base} base, split-conformal offsets "
        f"{ltv.interval.offsets[0]:+.3f} / {ltv.interval.offsets[1]:+.3f} in log1p space from "
        f"the validation cutoff): {ltv.interval_coverage_80:.1%} of test customers' actual spend "
        f"inside, median width {_fmt(ltv.interval_median_width)}"
    )
    by_origin = report.rolling.ltv_interval if report.rolling is not None else None
    if by_origin is not None:
        cells = ", ".join(
            f"{_fmt(c)} (width {_fmt(w)})"
            for c, w in zip(
                by_origin.coverage_80_by_origin, by_origin.median_width_by_origin, strict=True
            )
        )
        line += f"; coverage at the rolling origins, latest first: {cells}"
    return [line + ".", ""]


def render_markdown(report: BacktestReport) -> str:
    churn_keys = (*CHURN_METRIC_KEYS, "roc_auc_active_365d")
    windows = report.windows
    names = sorted({b for r in report.rolling_origin for b in r.baselines})
    lines = [
        "# Backtest",
        "",
        f"Churn: test cutoff {windows.churn.test_cutoff}, horizon "
        f"{windows.churn.horizon_days} days, validation {windows.churn.validation_cutoff}, "
        f"{len(windows.churn.training_cutoffs)} training cutoffs; "
        f"threshold {report.churn.threshold:.3f}.",
        "",
        *_table(report.churn, churn_keys),
        "",
        f"LTV: test cutoff {windows.ltv.test_cutoff}, horizon "
        f"{windows.ltv.horizon_days} days, validation {windows.ltv.validation_cutoff}, "
        f"{len(windows.ltv.training_cutoffs)} training cutoffs; objective "
        f"{report.ltv.objective}.",
        "",
        *_table(report.ltv, LTV_METRIC_KEYS),
        "",
        *([describe_sampling(report.sampling), ""] if report.sampling else []),
        *interval_lines(report),
        "## Rolling origin",
        "",
        "| task | metric | test cutoff | model | " + " | ".join(names) + " |",
        "| --- | --- | --- | --- |" + " --- |" * len(names),
    ]
    for row in report.rolling_origin:
        cells = [_fmt(row.baselines.get(n, "")) for n in names]
        lines.append(
            f"| {row.task} | {row.metric} | {row.test_cutoff} | {_fmt(row.model)} | "
            + " | ".join(cells)
            + " |"
        )
    if report.rolling is not None:
        lines += ["", "## Rolling evaluation", "", *rolling_table(report.rolling)]
    lines += ["", *quality_sections(report)]
    lines += [
        "## Segments",
        "",
        "| segment | customers | revenue share | churn rate | action |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in report.segments:
        lines.append(
            f"| {s.segment} | {s.customers} | {s.revenue_share:.1%} | "
            f"{s.churn_rate:.1%} | {s.action} |"
        )
    lines += ["", "## Stage timings (s)", ""]
    lines += [f"- {stage}: {seconds:.2f}" for stage, seconds in report.timings.items()]
    return "\n".join(lines) + "\n"
