"""What `retention demo` prints: the scoring and trainer answers as tables a person reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from retention_shared.customer_lists import HIGH_VALUE_AT_RISK

if TYPE_CHECKING:
    from retention_cli.demo import DemoReport

__all__ = ["AT_RISK_QUERY", "SAMPLE_CAMPAIGN", "print_model_card", "print_report"]

# "High-value customers at risk", as the console's overview shows it (one definition).
AT_RISK_QUERY = HIGH_VALUE_AT_RISK
SAMPLE_CAMPAIGN = {"budget": 2000.0, "cost_per_contact": 5.0, "save_rate": 0.25, "discount": 0.1}

_CHURN_METRICS = ("roc_auc", "pr_auc", "brier", "f1", "lift_top_decile")
_LTV_METRICS = ("spearman", "top10_capture", "normalized_gini", "mae", "rmse")


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _money(value: Any) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _metrics_table(title: str, section: dict[str, Any], names: tuple[str, ...]) -> Table:
    baselines = section.get("baselines", {})
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("model", style="bold")
    for name in baselines:
        table.add_column(name)
    for metric in names:
        table.add_row(
            metric,
            _number(section["model"].get(metric)),
            *(_number(b.get(metric)) for b in baselines.values()),
        )
    return table


def print_model_card(console: Console, card: dict[str, Any]) -> None:
    """The champion, its training window and drift, and its backtest against the baselines
    (`GET /v1/model`); `retention model` prints the same card."""
    window = card["training_window"]
    console.rule("Model card")
    console.print(
        f"champion [bold]{card['model_tag']}[/] since {card['champion_since']}, "
        f"trained on orders {window['start']} .. {window['end']}; "
        f"drift: {card['drift']['status']}"
    )
    console.print(_metrics_table("Churn backtest (test cutoff)", card["churn"], _CHURN_METRICS))
    console.print(_metrics_table("LTV backtest (test cutoff)", card["ltv"], _LTV_METRICS))


def _segments(console: Console, answer: dict[str, Any]) -> None:
    console.rule("Segments")
    table = Table()
    for column in ("segment", "customers", "revenue share", "mean churn p", "revenue at risk"):
        table.add_column(column, justify="left" if column == "segment" else "right")
    table.add_column("recommended action")
    for row in answer["segments"]:
        table.add_row(
            row["segment"],
            f"{row['customers']:,}",
            f"{row['revenue_share']:.1%}",
            _number(row["mean_churn_probability"], 2),
            _money(row["revenue_at_risk"]),
            row["action"],
        )
    console.print(table)


def _at_risk(console: Console, answer: dict[str, Any], reasons: dict[str, list[str]]) -> None:
    console.rule(
        "Top 10 high-value customers at risk (medium or high churn risk, by revenue at risk)"
    )
    table = Table()
    table.add_column("customer", no_wrap=True)
    for column in ("churn p", "predicted LTV", "80% interval", "revenue at risk"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("segment", no_wrap=True)
    for row in answer["customers"]:
        table.add_row(
            row["customer_id"],
            f"{row['churn_probability']:.2f}",
            _money(row["predicted_ltv"]),
            f"{_money(row['ltv_low'])}–{_money(row['ltv_high'])}",
            _money(row["revenue_at_risk"]),
            row["segment"],
        )
    console.print(table)
    console.print("Why (the strongest drivers of each churn score):")
    for row in answer["customers"]:
        why = "; ".join(reasons.get(row["customer_id"], []))
        console.print(f"  {row['customer_id']}: {why}", soft_wrap=True)


def _campaign(console: Console, request: dict[str, Any], plan: dict[str, Any]) -> None:
    console.rule(
        f"Campaign plan: budget {_money(request['budget'])}, {request['cost_per_contact']:g} "
        f"per contact, save rate {request['save_rate']:.0%}, discount {request['discount']:.0%}"
    )
    table = Table()
    for column in ("scenario", "save rate", "saved revenue", "cost", "net profit", "ROI"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for name in ("pessimistic", "expected", "optimistic"):
        s = plan[name]
        roi = "–" if s["roi"] is None else f"{s['roi']:.1f}x"
        table.add_row(
            name,
            f"{s['save_rate']:.0%}",
            _money(s["expected_saved_revenue"]),
            _money(s["cost"]),
            _money(s["net_profit"]),
            roi,
        )
    console.print(
        f"{len(plan['contacts']):,} of {plan['candidates']:,} customers to contact, best first."
    )
    console.print(table)


def print_report(console: Console, report: DemoReport, log_path: Path) -> None:
    streamed = report.streamed
    console.print(
        f"\nStreamed {streamed['orders']:,} orders: {streamed['accepted']:,} accepted, "
        f"{streamed['rejected']:,} rejected by ingest's cleaning; "
        f"{streamed['customers']:,} customers."
    )
    print_model_card(console, report.model)
    _segments(console, report.segments)
    _at_risk(console, report.at_risk, report.reasons)
    _campaign(console, SAMPLE_CAMPAIGN, report.campaign)
    console.rule("Explore")
    console.print(
        f"open http://127.0.0.1:{report.console_port} and sign in with {report.key}",
        style="bold",
    )
    for name, url in report.urls.items():
        console.print(f"{name:<9} {url}/docs   metrics: {url}/metrics")
    console.print(f"API key (tenant 'default', role admin): {report.key}")
    console.print(
        f"e.g. curl -H 'Authorization: Bearer {report.key}' "
        f"'{report.urls['scoring']}/v1/customers?risk_band=high&sort=revenue_at_risk&limit=5'"
    )
    console.print(f"service logs: {log_path} (removed when the demo stops)")
