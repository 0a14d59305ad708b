"""Reasons a marketer reads: the features that pushed a score most, in words with their values.

The contributions are XGBoost's own per-feature contributions (`pred_contribs`, SHAP values in
margin units) for one customer; the strongest three by absolute size become sentences such as
"no order for 143 days, 3x longer than usual", each marked as raising or lowering the score.

**Only drivers that push the way the score went.** The contributions of one customer add up to
how far their score sits from the model's base (the average customer's log-odds, or log(LTV)):
above it, the customer is explained by what raised the score; below it, by what lowered it. A
driver pushing the other way is left out, so an ordering-yesterday customer with a high churn
score is not told "last order 1 day ago" as a churn reason. The clock's time of year, the same for
every customer at one moment, is left out of both (`SAME_FOR_EVERY_CUSTOMER`). That base can sit
high: on a tenant where most customers lapse, the typical customer's churn probability is ~0.9,
and a customer at 0.86 is explained by what lowered it; `baseline_probability` is that typical
customer's churn probability, shown next to the reasons so "lowers" reads as "lower than x%".

**Wording that reads naturally.** A net spend below zero (returns and refunds exceeding
purchases) reads "net returns of 1,591 in the last 90 days", not "spent −1,591"; nothing spent
reads "nothing spent in ..."; a recent last order reads "last order 3 days ago", and "no order
for N days" is kept for a silence that is long: at least 1.5 usual gaps, or 30 days for a
customer without a usual gap yet.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Reason", "baseline_probability", "describe", "no_usual_gap", "top_reasons"]

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


# Without a usual gap, a silence this long reads as "no order for N days".
LONG_SILENCE_DAYS = 30


def _recency(f: Features) -> str:
    days = f["recency_days"]
    silent, recent = f"no order for {_days(days)}", f"last order {_days(days)} ago"
    gap = f.get("gap_mean_days", 0.0)
    if gap >= 1 and days > 0:
        ratio = days / gap
        if ratio >= 1.5:
            return f"{silent}, {_times(ratio)} longer than usual"
        if ratio <= 0.67:
            return f"{recent}, sooner than usual (every {_days(gap)})"
        return f"{recent}, about as usual (every {_days(gap)})"
    return silent if days >= LONG_SILENCE_DAYS else recent


def no_usual_gap(f: Features) -> str:
    """Why a customer has no usual gap yet, by what the features count: one order, or several
    orders less than a day apart (two invoices minutes apart are two orders, not a rhythm)."""
    orders = round(f.get("frequency", 1.0))
    if orders <= 1:
        return "one order so far"
    if f.get("tenure_days", 0.0) - f.get("recency_days", 0.0) < 1:
        return f"{orders} orders, all within one day"
    return f"{orders} orders, less than a day apart on average"


def _without_gap(f: Features) -> str:
    ago = f"{_days(f['recency_days'])} ago"
    return (
        f"one order so far, {ago}"
        if f.get("frequency", 1.0) < 1.5
        else f"{no_usual_gap(f)}, the last {ago}"
    )


def _gap_ratio(f: Features) -> str:
    """Gap-normalized recency: against the usual gap, or for a customer without one (orders
    less than a day apart on average, whose ratio divides by one day) what they have done."""
    if f.get("gap_mean_days", 0.0) < 1:
        return _without_gap(f)
    return _recency(f)


def _spent(value: float, when: str) -> str:
    """Net spend in words: returns beyond purchases read as net returns, not negative spend."""
    if value < 0:
        return f"net returns of {_money(-value)} {when}"
    if round(value, 2) == 0:
        return f"nothing spent {when}"
    return f"spent {_money(value)} {when}"


def _average_order(f: Features) -> str:
    value = f["avg_order_value"]
    if value < 0:
        return f"net refunds of {_money(-value)} per order on average"
    return f"average order {_money(value)}"


def _expected(f: Features) -> str:
    late = f["days_past_expected_order"]
    if f.get("gap_mean_days", 0.0) < 1:  # no rhythm to be due by (see `no_usual_gap`)
        return _without_gap(f)
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


def _season(f: Features) -> str:
    # season_sin/cos put the clock's month m at the angle 2π·(m − 0.5)/12: read m back.
    angle = math.atan2(f["season_sin"], f["season_cos"]) % (2 * math.pi)
    month = round(angle * 12 / (2 * math.pi) + 0.5 - 1) % 12 + 1
    return f"the time of year ({calendar.month_name[month]})"


def _window(kind: str, days: int) -> Callable[[Features], str]:
    def text(f: Features) -> str:
        value = f[f"{kind}_{days}d"]
        if kind == "orders":
            return f"{_count(value, 'order')} in the last {days} days"
        return _spent(value, f"in the last {days} days")

    return text


_TEXTS: dict[str, Callable[[Features], str]] = {
    "recency_days": _recency,
    "recency_gap_ratio": _gap_ratio,
    "days_past_expected_order": _expected,
    "frequency": lambda f: f"{_count(f['frequency'], 'order')} so far",
    "monetary": lambda f: _spent(f["monetary"], "in total"),
    "avg_order_value": _average_order,
    "avg_items_per_order": lambda f: f"{f['avg_items_per_order']:.0f} items per order on average",
    "tenure_days": lambda f: f"customer for {_days(f['tenure_days'])}",
    "spend_trend": _trend,
    "gap_mean_days": lambda f: f"usually orders every {_days(f['gap_mean_days'])}",
    "gap_std_days": lambda f: f"irregular ordering: gaps vary by about {_days(f['gap_std_days'])}",
    "unique_products": lambda f: f"bought {_count(f['unique_products'], 'different product')}",
    "cancellation_rate": lambda f: f"{f['cancellation_rate']:.0%} of order value cancelled",
    "active_months": lambda f: f"bought in {_count(f['active_months'], 'different month')}",
    "orders_season_last_year": lambda f: (
        f"{_count(f['orders_season_last_year'], 'order')} in the same 90 days last year"
    ),
    "q4_spend_share": lambda f: f"{f['q4_spend_share']:.0%} of spend in October-December",
    # Both halves of one point on the circle: told once.
    "season_sin": _season,
    "season_cos": _season,
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


# The clock's time of year is the same for every customer of a tenant at one moment: it moves
# everyone's score alike, so it is no reason for this customer's (and told to every customer it
# would crowd out what is theirs). It stays in the score; reasons compare with the typical customer
# at this time of year.
SAME_FOR_EVERY_CUSTOMER = frozenset({"season_sin", "season_cos"})


def baseline_probability(base: float, contributions: Mapping[str, float]) -> float:
    """The churn probability of the model's typical customer at this clock: the sigmoid of the
    base log-odds plus what `SAME_FOR_EVERY_CUSTOMER` adds. Reasons raise or lower a score
    against this, so a "lowers" at a high score means lower than an even higher typical one."""
    margin = base + sum(v for k, v in contributions.items() if k in SAME_FOR_EVERY_CUSTOMER)
    return 1.0 / (1.0 + math.exp(-margin))


def top_reasons(
    contributions: Mapping[str, float], features: Features, count: int = 3
) -> list[Reason]:
    """The `count` features with the largest absolute contribution, strongest first, among those
    that push the way all of them together do (the score's side of the model's base at this time
    of year; see the module docstring and `SAME_FOR_EVERY_CUSTOMER`).

    Features that share a sentence (recency_days and recency_gap_ratio) are told once.
    """
    contributions = {
        name: value for name, value in contributions.items() if name not in SAME_FOR_EVERY_CUSTOMER
    }
    net = sum(contributions.values())
    reasons: list[Reason] = []
    told: set[str] = set()
    for feature, contribution in sorted(contributions.items(), key=lambda kv: -abs(kv[1])):
        if len(reasons) == count or contribution == 0:
            break
        if contribution * net < 0:
            continue  # pushes against the score: not a reason for it
        text = describe(feature, features)
        if text in told:
            continue
        told.add(text)
        reasons.append(Reason(feature, text, contribution))
    return reasons
