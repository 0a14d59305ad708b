"""The insights narrative: a few plain sentences made from the numbers of the same answer (no I/O).

Deterministic: the same KPIs and segment table give the same sentences. Every number a sentence
quotes is a value of the insights answer, and the sentence lists it with its JSON Pointer
(RFC 6901) into that answer, so a reader — or a test — can check each one. Numbers are quoted
as: counts with thousands separators (`1,162`), money in whole units of the tenant's currency
(`48,210`; scoring does not know which currency), shares as whole percents (`18%`), days as is.
Segment names are quoted in single quotes; actions are not quoted (they are free text).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from retention_scoring.insights import Kpi, KpiName

__all__ = ["Quoted", "Sentence", "narrate", "quote"]

Style = Literal["count", "currency", "share", "days"]
Number = int | float


@dataclass(frozen=True)
class Quoted:
    text: str  # as it appears in the sentence
    path: str  # JSON Pointer into the insights answer
    value: Number


@dataclass(frozen=True)
class Sentence:
    text: str
    numbers: list[Quoted]


def quote(value: Number, style: Style) -> str:
    if style == "share":
        return f"{value * 100:.0f}%"
    if style == "currency":
        return f"{value:,.0f}"
    return f"{int(value):,}"


def _sentence(
    template: str, names: dict[str, str], **numbers: tuple[Number, Style, str]
) -> Sentence:
    """`template` with `{field}`s filled: a number field from `numbers` (value, style, path),
    anything else (a segment name) from `names`."""
    quoted = {
        field: Quoted(quote(value, style), path, value)
        for field, (value, style, path) in numbers.items()
    }
    text = template.format(**names, **{field: q.text for field, q in quoted.items()})
    order = [field for _, field, _, _ in string.Formatter().parse(template) if field in quoted]
    return Sentence(text, [quoted[field] for field in order])


def _customers(count: Number) -> str:
    return "customer" if count == 1 else "customers"


class _Kpis:
    """The KPIs by name, with their paths in the answer."""

    def __init__(self, kpis: Sequence[Kpi]) -> None:
        self._at = {kpi.name: (i, kpi) for i, kpi in enumerate(kpis)}

    def value(self, name: KpiName) -> tuple[Number, Style, str]:
        i, kpi = self._at[name]
        assert kpi.value is not None
        return kpi.value, kpi.unit, f"/kpis/{i}/value"

    def kpi(self, name: KpiName) -> Kpi:
        return self._at[name][1]

    def change(self, name: KpiName, field: str) -> tuple[str, dict[str, tuple[Number, Style, str]]]:
        """`, up from {field} under the previous model` (or down, or the same) and its number;
        nothing without a previous value."""
        i, kpi = self._at[name]
        if kpi.previous is None or kpi.value is None:
            return "", {}
        if quote(kpi.previous, kpi.unit) == quote(kpi.value, kpi.unit):
            return ", the same as under the previous model", {}
        direction = "up" if kpi.value > kpi.previous else "down"
        return (
            f", {direction} from {{{field}}} under the previous model",
            {field: (kpi.previous, kpi.unit, f"/kpis/{i}/previous")},
        )


def narrate(
    kpis: Sequence[Kpi], segments: Sequence[dict], active_days: int, ltv_horizon_days: int
) -> list[Sentence]:
    """Three to six sentences about a tenant with customers (one without): activity, retention,
    risk, predicted value, and the segments holding the most revenue and the most risk.

    `segments` are the answer's segment rows in its order (with `revenue_share`,
    `revenue_at_risk`, `revenue_at_risk_share`, `customers`).
    """
    k = _Kpis(kpis)
    if k.kpi("customers").value == 0:
        return [
            Sentence(
                "There are no customers yet: orders sent to ingest are scored as they arrive.", []
            )
        ]
    days = (active_days, "days", "/active_days")
    sentences = [
        _sentence(
            "Of {customers} {noun}, {active} ordered in the last {days} days.",
            {"noun": _customers(k.kpi("customers").value or 0)},
            customers=k.value("customers"),
            active=k.value("active_customers"),
            days=days,
        )
    ]
    if k.kpi("retention_rate").value is None:
        sentences.append(
            _sentence(
                "No customer ordered in the {days} days before that, so there is no retention "
                "rate yet.",
                {},
                days=days,
            )
        )
    else:
        sentences.append(
            _sentence(
                "The retention rate is {rate}: the share of the customers who ordered in the "
                "{days} days before that who ordered again in the last {days2}.",
                {},
                rate=k.value("retention_rate"),
                days=days,
                days2=days,
            )
        )
    at_risk_change, at_risk_previous = k.change("at_risk_customers", "at_risk_before")
    money_change, money_previous = k.change("revenue_at_risk", "money_before")
    at_risk = k.kpi("at_risk_customers").value
    sentences.append(
        _sentence(
            "{at_risk} {noun} at high risk of churning"
            + at_risk_change
            + ", and the revenue at risk is {money}"
            + money_change
            + ".",
            {"noun": "customer is" if at_risk == 1 else "customers are"},
            at_risk=k.value("at_risk_customers"),
            money=k.value("revenue_at_risk"),
            **at_risk_previous,
            **money_previous,
        )
    )
    predicted_change, predicted_previous = k.change("predicted_revenue", "predicted_before")
    sentences.append(
        _sentence(
            "Customers are predicted to spend {predicted} over the next {horizon} days"
            + predicted_change
            + ".",
            {},
            predicted=k.value("predicted_revenue"),
            horizon=(ltv_horizon_days, "days", "/ltv_horizon_days"),
            **predicted_previous,
        )
    )
    sentences.extend(_segment_sentences(segments))
    return sentences


def _segment_sentences(segments: Sequence[dict]) -> list[Sentence]:
    """The segment holding the most revenue to date and the one holding the most revenue at
    risk (the answer's first row): one sentence each, or one for both when they are the same."""
    if not segments:
        return []
    top = max(range(len(segments)), key=lambda j: (segments[j]["revenue_share"], -j))
    has_revenue = segments[top]["revenue_share"] > 0
    has_risk = segments[0]["revenue_at_risk"] > 0

    def about(j: int) -> dict[str, str]:
        return {"name": segments[j]["segment"], "noun": _customers(segments[j]["customers"])}

    def number(j: int, field: str, style: Style) -> tuple[Number, Style, str]:
        return segments[j][field], style, f"/segments/{j}/{field}"

    revenue = number(top, "revenue_share", "share")
    risk = {
        "risk": number(0, "revenue_at_risk_share", "share"),
        "money": number(0, "revenue_at_risk", "currency"),
    }
    if has_revenue and has_risk and top == 0:
        return [
            _sentence(
                "The '{name}' segment holds {revenue} of revenue to date and {risk} of the "
                "revenue at risk ({money}) with {customers} {noun}.",
                about(0),
                revenue=revenue,
                **risk,
                customers=number(0, "customers", "count"),
            )
        ]
    sentences = []
    if has_revenue:
        sentences.append(
            _sentence(
                "The '{name}' segment holds {revenue} of revenue to date with {customers} {noun}.",
                about(top),
                revenue=revenue,
                customers=number(top, "customers", "count"),
            )
        )
    if has_risk:
        sentences.append(
            _sentence(
                "The '{name}' segment holds {risk} of the revenue at risk ({money}) with "
                "{customers} {noun}.",
                about(0),
                **risk,
                customers=number(0, "customers", "count"),
            )
        )
    return sentences
