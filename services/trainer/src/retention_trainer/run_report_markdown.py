"""The run report as Markdown: the numbers of :mod:`retention_trainer.run_report` for a person.

Every text cell is escaped (`text`), so a name holding Markdown or HTML reads as itself in any
renderer; numbers use one format per kind (`count`, `money`, `share`, `metric`), which a test
reuses to find a number in the document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from retention_bundle.backtest_report import CustomerSampling
from retention_trainer.evaluation.rolling import reading
from retention_trainer.sampling import describe_sampling

__all__ = [
    "HEADLINE_LABELS",
    "count",
    "metric",
    "money",
    "render_run_report",
    "share",
    "text",
    "when",
]

HEADLINE_LABELS = {
    "customers": "Customers",
    "active_90d": "Active in the last 90 days",
    "at_risk": "At high churn risk (p ≥ 0.60)",
    "revenue_at_risk": "Revenue at risk",
    "predicted_revenue": "Predicted revenue",
}
_MONEY_KEYS = {"revenue_at_risk", "predicted_revenue"}
_BAR_WIDTH = 20
# Markdown punctuation that could start emphasis, a link, an image, raw HTML, an entity or end
# a table cell; a backslash makes each literal (CommonMark escapes any ASCII punctuation). An
# underscore inside a word cannot start emphasis, so `recency_days` stays readable.
_SPECIAL = re.compile(r"([\\`*\[\]<>|!&#~]|(?<![^\W_])_|_(?![^\W_]))")


def text(value: object) -> str:
    """Plain text as a Markdown table cell: punctuation escaped, one line."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def when(iso: str) -> str:
    """An ISO instant as people read it: `2011-12-09 12:50 UTC`."""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def count(value: int) -> str:
    return f"{value:,}"


def money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def metric(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _signed(value: float | None, money_like: bool) -> str:
    if value is None:
        return "–"
    return f"{value:+,.0f}" if money_like else f"{value:+.3f}"


def _table(header: list[str], rows: list[list[str]], left: tuple[int, ...] = (0,)) -> list[str]:
    """A table with numbers right-aligned: every column but those in `left`."""
    align = ["---" if i in left else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _headline(facts: dict[str, Any]) -> list[str]:
    h = facts["headline"]
    horizon = h["ltv_horizon_days"]
    labels = {
        **HEADLINE_LABELS,
        "revenue_at_risk": f"{HEADLINE_LABELS['revenue_at_risk']} (next {horizon} days)",
        "predicted_revenue": f"{HEADLINE_LABELS['predicted_revenue']} (next {horizon} days)",
    }
    rows = [
        [label, money(h[key]) if key in _MONEY_KEYS else count(h[key])]
        for key, label in labels.items()
    ]
    return [
        "## Headline",
        "",
        f"At {when(facts['as_of'])}, the last order, scored by this run's model. Revenue at "
        "risk is Σ churn probability × predicted revenue per customer; at risk means the high "
        "risk band.",
        "",
        *_table(["", "value"], rows),
    ]


def _segments(facts: dict[str, Any]) -> list[str]:
    rows = [
        [
            text(s["segment"]),
            count(s["customers"]),
            share(s["revenue_share"]),
            metric(s["mean_churn_probability"]),
            money(s["revenue_at_risk"]),
            money(s["predicted_ltv"]),
            text(s["action"]),
        ]
        for s in facts["segments"]
    ]
    total = sum(s["revenue_at_risk"] for s in facts["segments"]) or 1.0
    at_risk = [
        [
            text(s["segment"]),
            money(s["revenue_at_risk"]),
            share(s["revenue_at_risk"] / total),
            "█" * round(_BAR_WIDTH * s["revenue_at_risk"] / total) or "·",
        ]
        for s in facts["segments"]
    ]
    header = ["segment", "customers", "revenue share", "mean churn p", "revenue at risk"]
    return [
        "## Segments",
        "",
        "Revenue share is each segment's share of net spend to date.",
        "",
        *_table([*header, "predicted revenue", "action"], rows, left=(0, 6)),
        "### Revenue at risk by segment",
        "",
        *_table(["segment", "revenue at risk", "share", ""], at_risk, left=(0, 3)),
    ]


def _drivers(facts: dict[str, Any]) -> list[str]:
    rows = [
        [
            str(i),
            text(d["feature"]),
            text(d["meaning"]),
            metric(d["mean_abs_contribution"]),
            share(d["raises_share"]),
        ]
        for i, d in enumerate(facts["drivers"], start=1)
    ]
    return [
        "## What drives churn",
        "",
        "The features with the largest mean absolute contribution to the churn score (log-odds) "
        "over these customers, and the share of customers whose risk each one raises.",
        "",
        *_table(
            ["#", "feature", "meaning", "mean contribution", "raises risk for"],
            rows,
            left=(1, 2),
        ),
    ]


def _metrics_table(section: dict[str, Any]) -> list[str]:
    names = list(next(iter(section["metrics"].values())))
    rows = [
        [f"**{text(name)}**" if name == "model" else text(name)]
        + [metric(values[k]) for k in names]
        for name, values in section["metrics"].items()
    ]
    return _table(["", *names], rows)


def _backtest(facts: dict[str, Any]) -> list[str]:
    churn, ltv = facts["backtest"]["churn"], facts["backtest"]["ltv"]
    model_auc = churn["metrics"]["model"]["roc_auc"]
    baselines = {k: v["roc_auc"] for k, v in churn["metrics"].items() if k != "model"}
    beaten = [
        k for k, v in baselines.items() if model_auc is not None and v is not None and model_auc > v
    ]
    reliability = [
        [
            f"{r['low']:.1f}–{r['high']:.1f}",
            count(r["customers"]),
            metric(r["mean_predicted"]),
            metric(r["observed"]),
        ]
        for r in facts["reliability"]
    ]
    return [
        "## Backtest against the baselines",
        "",
        f"Churn in the {churn['horizon_days']} days after {text(churn['test_cutoff'])}, "
        f"{count(churn['test_customers'])} test customers, {share(churn['churn_rate'])} churned. "
        f"The model's ROC-AUC beats {len(beaten)} of {len(baselines)} baselines.",
        "",
        *_metrics_table(churn),
        f"Revenue in the {ltv['horizon_days']} days after {text(ltv['test_cutoff'])}, "
        f"{count(ltv['test_customers'])} test customers.",
        "",
        *_metrics_table(ltv),
        *_sampling(facts.get("sampling")),
        *_production(facts.get("production")),
        *_rolling(facts.get("rolling")),
        "### Reliability",
        "",
        "Churn test customers by predicted probability: a calibrated model's observed churn is "
        "close to its mean prediction in every bin.",
        "",
        *_table(["predicted", "customers", "mean predicted", "observed churn"], reliability),
    ]


def _sampling(sampling: dict[str, Any] | None) -> list[str]:
    """Which customers the models trained on (absent from reports before sampling)."""
    if not sampling:
        return []
    return [describe_sampling(CustomerSampling.model_validate(sampling)), ""]


def _production(production: dict[str, Any] | None) -> list[str]:
    """The production window next to the evidence one: what the served model was trained on."""
    if not production:
        return []
    if not production["refitted"]:
        return [f"Served model: {text(production['reason'])}.", ""]
    churn, ltv = production["churn"], production["ltv"]
    return [
        "These are the held-out numbers the gate decided on. The served model is the same model "
        f"refitted, with the same settings, on outcomes up to {text(production['data_end'])}: "
        f"churn training cutoffs up to {text(churn['training_cutoffs'][-1])} "
        f"({count(churn['training_rows'])} examples), LTV up to "
        f"{text(ltv['training_cutoffs'][-1])} ({count(ltv['training_rows'])} examples).",
        "",
    ]


_TASK_LABELS = {"churn": "Churn", "ltv": "LTV"}
# The metrics a reading sentence is written for; the table has them all.
_HEADLINE_METRICS = {"churn": "roc_auc", "ltv": "spearman"}
_MONEY_METRICS = {"mae", "rmse"}  # in currency: whole units, as the report's other amounts


def _rolling(rolling: dict[str, Any] | None) -> list[str]:
    """Means over the rolling origins and the interval of model − best baseline, per metric."""
    if not rolling:
        return []
    origins = rolling["origins"]
    rows = []
    for task, entries in rolling["metrics"].items():
        for name, e in entries.items():
            best = e["best_baseline"]
            low, high = e["diff_interval_90"]
            amount = name in _MONEY_METRICS
            value = money if amount else metric
            rows.append(
                [
                    _TASK_LABELS.get(task, text(task)),
                    text(name) + ("" if e["higher_is_better"] else " (lower is better)"),
                    value(e["model_mean"]),
                    text(best) if best else "–",
                    value(e["baselines"].get(best)) if best else "–",
                    f"{_signed(low, amount)} to {_signed(high, amount)}",
                    text(e["verdict"]),
                ]
            )
    sentences = [
        f"- {text(reading(_TASK_LABELS[task], name, rolling['metrics'][task][name]))}"
        for task, name in _HEADLINE_METRICS.items()
        if name in rolling["metrics"].get(task, {})
    ]
    return [
        f"### Over {len(origins.get('churn', []))} churn and {len(origins.get('ltv', []))} LTV "
        "test origins",
        "",
        f"The model and every baseline again at origins {rolling['origin_every_days']} days "
        f"apart (churn {', '.join(origins.get('churn', []))}; LTV "
        f"{', '.join(origins.get('ltv', []))}), each trained only on what was known then. A gain "
        "is real when the 90% interval of the difference (model − best baseline, from "
        f"{count(rolling['resamples'])} bootstrap resamples of the customers) is on the good "
        "side of 0; an interval that contains 0 cannot be told from noise.",
        "",
        *sentences,
        "",
        *_table(
            ["", "metric", "model", "best baseline", "baseline", "difference (90%)", "reading"],
            rows,
            left=(0, 1, 3, 6),
        ),
    ]


def _changes(facts: dict[str, Any]) -> list[str]:
    lines = ["## Changes since the previous champion", ""]
    gate, changes = facts.get("gate"), facts.get("changes")
    if gate:
        verdict = "promote" if gate["promote"] else "keep the champion"
        lines += [f"Gate: {verdict} — {text(gate['reason'])}.", ""]
    if not changes:
        return [*lines, "No previous champion to compare with.", ""]
    if not changes["champion_test_cutoff"]:
        return [
            *lines,
            f"Champion {text(changes['champion_tag'])}: its bundle could not be read.",
            "",
        ]
    lines += [
        f"Champion {text(changes['champion_tag'])}. Its backtest ran at "
        f"{text(changes['champion_test_cutoff'])}, so metric changes mix model and period; the "
        "gate above scores both models on this run's test set.",
        "",
    ]
    if changes["headline"]:
        rows = [
            [
                HEADLINE_LABELS[key],
                *(
                    money(d[k]) if key in _MONEY_KEYS else _count_or_dash(d[k])
                    for k in ("champion", "run")
                ),
                _signed(d["change"], money_like=True),
            ]
            for key, d in changes["headline"].items()
        ]
        lines += _table(["headline", "champion", "this run", "change"], rows)
    rows = [
        [text(name), metric(d["champion"]), metric(d["run"]), _signed(d["change"], False)]
        for name, d in changes["metrics"].items()
    ]
    lines += _table(["backtest metric", "champion", "this run", "change"], rows)
    rows = [
        [
            text(s["segment"]),
            _count_or_dash(s["champion"]),
            _count_or_dash(s["run"]),
            f"{s['change']:+,}",
        ]
        for s in changes["segments"]
    ]
    lines += [
        "Segment sizes among each model's churn test customers:",
        "",
        *_table(["segment", "champion", "this run", "change"], rows),
    ]
    return lines


def _count_or_dash(value: float | None) -> str:
    return "–" if value is None else count(round(value))


def _campaign(facts: dict[str, Any]) -> list[str]:
    c = facts["campaign"]
    r = c["request"]
    scenarios = [
        [
            name,
            share(c[name]["save_rate"]),
            money(c[name]["expected_saved_revenue"]),
            money(c[name]["cost"]),
            money(c[name]["net_profit"]),
            "–" if c[name]["roi"] is None else f"{c[name]['roi']:.1f}x",
        ]
        for name in ("pessimistic", "expected", "optimistic")
    ]
    segments = [
        [text(s["segment"]), count(s["contacts"]), money(s["expected_net_value"])]
        for s in c["by_segment"]
    ]
    return [
        "## Campaign plan",
        "",
        f"A budget of {money(r['budget'])} at {r['cost_per_contact']:g} per contact, a "
        f"{share(r['save_rate'])} save rate and a {share(r['discount'])} discount: contact "
        f"{count(c['contacts'])} of {count(c['candidates'])} customers, those with the highest "
        "expected net value (churn probability × save rate × predicted revenue × (1 − discount) "
        "− cost).",
        "",
        *_table(["scenario", "save rate", "saved revenue", "cost", "net profit", "ROI"], scenarios),
        *_table(["segment", "contacts", "expected net value"], segments),
    ]


def render_run_report(facts: dict[str, Any]) -> str:
    lines = [
        f"# Run report: {text(facts['tenant'])}",
        "",
        f"{count(facts['orders'])} orders from {when(facts['first_order_at'])} to "
        f"{when(facts['as_of'])}.",
        "",
        *_headline(facts),
        *_segments(facts),
        *_drivers(facts),
        *_backtest(facts),
        *_changes(facts),
        *_campaign(facts),
    ]
    if facts.get("notes"):
        lines += ["## Notes", "", *(f"- {text(note)}" for note in facts["notes"]), ""]
    return "\n".join(lines).rstrip() + "\n"
