"""Reasons a marketer reads: the features that pushed a score most, in words with their values.

The contributions are XGBoost's own per-feature contributions (`pred_contribs`, SHAP values in
margin units) for one customer; the strongest three by absolute size become sentences such as
"no order for 143 days, 3x longer than usual", each marked as raising or lowering the score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Reason", "describe", "top_reasons"]

Features = Mapping[str, float]


@dataclass(frozen=True)
class Reason:
    feature: str
    text: str
    contribution: float  # in the model's margin units; the sign says which way it pushed

    @property
    def direction(self) -> str:
        return "raises" if self.contribution > 0 else "lowers"


def _days(value: float) -> str:
    days = round(value)
    return "1 day" if days == 1 else f"{days} days"


def _count(value: float, noun: str) -> str:
    n = round(value)
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _money(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _times(ratio: float) -> str:
    return f"{ratio:.0f}x" if ratio >= 2.95 else f"{ratio:.1f}x"


def _recency(f: Features) -> str:
    text = f"no order for {_days(f['recency_days'])}"
    gap = f.get("gap_mean_days", 0.0)
    if gap >= 1 and f["recency_days"] > 0:
        ratio = f["recency_days"] / gap
        if ratio >= 1.5:
            return f"{text}, {_times(ratio)} longer than usual"
        if ratio <= 0.67:
            return f"{text}, sooner than usual (every {_days(gap)})"
        return f"{text}, about as usual (every {_days(gap)})"
    return text


def _expected(f: Features) -> str:
    late = f["days_past_expected_order"]
    if f.get("gap_mean_days", 0.0) <= 0:
        return f"one purchase so far, {_days(f['recency_days'])} ago"
    if late > 0:
        return f"next order was due {_days(late)} ago"
    return f"next order due in {_days(-late)}"


def _trend(f: Features) -> str:
    trend = f["spend_trend"]
    if trend <= -0.999:
        return "no spend in the last 90 days, after spending in the 90 before"
    if trend >= 0.999:
        return "all recent spend: nothing in the 90 days before the last 90"
    change = 2 * trend / (1 - trend)  # (g1 - g0) / g0 from (g1 - g0) / (g1 + g0)
    word = "up" if change > 0 else "down"
    return f"spending {word} {abs(change):.0%} on the previous 90 days"


def _window(kind: str, days: int) -> Callable[[Features], str]:
    def text(f: Features) -> str:
        value = f[f"{kind}_{days}d"]
        if kind == "orders":
            return f"{_count(value, 'order')} in the last {days} days"
        return f"spent {_money(value)} in the last {days} days"

    return text


_TEXTS: dict[str, Callable[[Features], str]] = {
    "recency_days": _recency,
    "recency_gap_ratio": _recency,
    "days_past_expected_order": _expected,
    "frequency": lambda f: f"{_count(f['frequency'], 'order')} so far",
    "monetary": lambda f: f"spent {_money(f['monetary'])} in total",
    "avg_order_value": lambda f: f"average order {_money(f['avg_order_value'])}",
    "avg_items_per_order": lambda f: f"{f['avg_items_per_order']:.0f} items per order on average",
    "tenure_days": lambda f: f"customer for {_days(f['tenure_days'])}",
    "spend_trend": _trend,
    "gap_mean_days": lambda f: f"usually orders every {_days(f['gap_mean_days'])}",
    "gap_std_days": lambda f: f"irregular ordering: gaps vary by about {_days(f['gap_std_days'])}",
    "unique_products": lambda f: f"bought {_count(f['unique_products'], 'different product')}",
    "cancellation_rate": lambda f: f"{f['cancellation_rate']:.0%} of order value cancelled",
    "active_months": lambda f: f"bought in {_count(f['active_months'], 'different month')}",
    **{
        f"{kind}_{days}d": _window(kind, days)
        for kind in ("orders", "spend")
        for days in (30, 90, 180, 365)
    },
}


def describe(feature: str, features: Features) -> str:
    """One feature of one customer in words; a model feature without wording reads as name = value."""
    text = _TEXTS.get(feature)
    return text(features) if text else f"{feature.replace('_', ' ')} = {features[feature]:g}"


def top_reasons(
    contributions: Mapping[str, float], features: Features, count: int = 3
) -> list[Reason]:
    """The `count` features with the largest absolute contribution, strongest first.

    Features that share a sentence (recency_days and recency_gap_ratio) are told once.
    """
    reasons: list[Reason] = []
    told: set[str] = set()
    for feature, contribution in sorted(contributions.items(), key=lambda kv: -abs(kv[1])):
        if len(reasons) == count or contribution == 0:
            break
        text = describe(feature, features)
        if text in told:
            continue
        told.add(text)
        reasons.append(Reason(feature, text, contribution))
    return reasons
