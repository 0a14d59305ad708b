"""The report's quality sections as Markdown: expected orders and the next-order date against
BG/NBD, the churn reliability table with its calibration error, and global feature importance.
Each section is left out for a report that lacks it (written before it was measured)."""

from __future__ import annotations

from retention_bundle.backtest_report import BacktestReport

__all__ = ["IMPORTANCE_ROWS", "quality_sections"]

# Features listed per task in the importance table (the report holds all of them).
IMPORTANCE_ROWS = 10


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _orders(report: BacktestReport) -> list[str]:
    orders = report.orders
    if orders is None:
        return []
    validation = ", ".join(f"{k} {v:.4f}" for k, v in orders.validation_mae_by_method.items())
    lines = [
        "## Expected orders and next-order date",
        "",
        f"Churn test cutoff, {orders.horizon_days}-day horizon: {orders.test_customers} "
        f"customers, {orders.ordered_customers} of whom ordered ({orders.mean_orders:.2f} orders "
        f"per customer). Method `{orders.method}`, chosen on the validation cutoff by orders MAE "
        f"({validation}). Date error: median |next_order_by − first actual order| in days over "
        "the customers who ordered and had a date; hit rate: of the dates inside the horizon, "
        "the share met (0.5 is right for a 50% date).",
        "",
        "| model | orders MAE | date error (days) | dated share | hit rate |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, m in {"**model**": orders.model, **orders.baselines}.items():
        lines.append(
            f"| {name} | {_number(m.mae)} | {_number(m.next_order_median_abs_days, 1)} | "
            f"{_number(m.next_order_dated_share)} | {_number(m.next_order_hit_rate)} |"
        )
    return [*lines, ""]


def _calibration(report: BacktestReport) -> list[str]:
    churn = report.churn
    if churn.expected_calibration_error is None or not churn.reliability:
        return []
    lines = [
        "## Churn calibration",
        "",
        f"Expected calibration error (10 bins): {churn.expected_calibration_error:.4f}.",
        "",
        "| predicted | customers | mean predicted | churned |",
        "| --- | --- | --- | --- |",
    ]
    for b in churn.reliability:
        lines.append(
            f"| {b.lower:.1f}–{b.upper:.1f} | {b.count} | {_number(b.mean_predicted)} | "
            f"{_number(b.observed_rate)} |"
        )
    return [*lines, ""]


def _importance(report: BacktestReport) -> list[str]:
    importance = report.importance
    if importance is None:
        return []
    churn = list(importance.churn.items())[:IMPORTANCE_ROWS]
    ltv = list(importance.ltv.items())[:IMPORTANCE_ROWS]
    lines = [
        "## Feature importance",
        "",
        "Mean absolute contribution over the test customers: churn in log-odds, LTV in "
        "log1p(LTV) of the tree part.",
        "",
        "| rank | churn | | LTV | |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rank in range(max(len(churn), len(ltv))):
        c = churn[rank] if rank < len(churn) else ("", None)
        v = ltv[rank] if rank < len(ltv) else ("", None)
        lines.append(f"| {rank + 1} | {c[0]} | {_number(c[1])} | {v[0]} | {_number(v[1])} |")
    return [*lines, ""]


def quality_sections(report: BacktestReport) -> list[str]:
    """Markdown lines of the sections this report has (none for an older one)."""
    return [*_orders(report), *_calibration(report), *_importance(report)]
