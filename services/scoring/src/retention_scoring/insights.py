"""A tenant's key numbers at its clock, from its scored population (no I/O).

Definitions (features are at the tenant clock, `as_of`; windows are the registry's, half-open
`(as_of − N days, as_of]`):

- `customers`: customers in the feature store (at least one order).
- `active_customers`: customers with a purchase order in the last `ACTIVE_DAYS` (90):
  `orders_90d > 0` — the same customers as `recency_days < 90` among those with a purchase.
- `retention_rate`: of the customers with a purchase in the 90 days before that,
  `(as_of − 180d, as_of − 90d]` (`orders_180d − orders_90d > 0`), the share with one in the last
  90 days too; null when nobody was active then.
- `at_risk_customers`: customers in the `high` risk band (churn probability ≥ 0.60).
- `revenue_at_risk`: Σ churn probability × predicted LTV, over every customer.
- `predicted_revenue`: Σ predicted LTV over the model's LTV horizon (`ltv_horizon_days`).

The first three do not depend on the model (`model_dependent` false: the previous champion
gives them the same values). The last three are recomputed with the previous champion's bundle
on the same features; its money KPIs are null when its LTV horizon differs (not comparable).

Every KPI is a count, a sum or a ratio of two of them (`Totals`), so the KPIs over customers
split in shares (sharded replicas) are those of the shares' totals added up (`added`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import polars as pl

from retention_shared.events import RiskBand
from retention_shared.features import WINDOWS_DAYS

__all__ = [
    "ACTIVE_DAYS",
    "Kpi",
    "KpiName",
    "ModelTotals",
    "Totals",
    "Unit",
    "added",
    "kpis",
    "kpis_of",
    "revenue_at_risk_shares",
    "totals",
]

ACTIVE_DAYS = 90
_RECENT = f"orders_{ACTIVE_DAYS}d"
_UP_TO_BEFORE = f"orders_{2 * ACTIVE_DAYS}d"
assert {ACTIVE_DAYS, 2 * ACTIVE_DAYS} <= set(WINDOWS_DAYS), "activity needs these windows"

KpiName = Literal[
    "customers",
    "active_customers",
    "at_risk_customers",
    "revenue_at_risk",
    "retention_rate",
    "predicted_revenue",
]
Unit = Literal["count", "currency", "share"]
Number = int | float | None


@dataclass(frozen=True)
class Kpi:
    name: KpiName
    label: str
    unit: Unit
    value: Number
    previous: Number
    model_dependent: bool


@dataclass(frozen=True)
class ModelTotals:
    at_risk_customers: int
    revenue_at_risk: float
    predicted_revenue: float


def model_totals(scores: pl.DataFrame) -> ModelTotals:
    """The KPIs a model decides, from a scores frame (`risk_band`, `revenue_at_risk`,
    `predicted_ltv`)."""
    totals = scores.select(
        at_risk=(pl.col("risk_band") == RiskBand.HIGH.value).sum(),
        revenue_at_risk=pl.col("revenue_at_risk").sum(),
        predicted=pl.col("predicted_ltv").sum(),
    ).row(0, named=True)
    return ModelTotals(
        at_risk_customers=int(totals["at_risk"] or 0),
        revenue_at_risk=float(totals["revenue_at_risk"] or 0.0),
        predicted_revenue=float(totals["predicted"] or 0.0),
    )


def activity(features: pl.DataFrame) -> tuple[int, int, int]:
    """(active customers, customers active in the 90 days before the last 90, those of them
    active in the last 90 too) from features at the tenant clock."""
    recent = features[_RECENT] > 0
    before = (features[_UP_TO_BEFORE] - features[_RECENT]) > 0
    return int(recent.sum()), int(before.sum()), int((recent & before).sum())


@dataclass(frozen=True)
class Totals:
    """The counts and sums the KPIs are made of, over some customers."""

    customers: int
    active: int
    active_before: int
    returning: int
    now: ModelTotals
    before: ModelTotals | None  # under the previous champion; None without its scores

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Totals:
        before = data["before"]
        return cls(
            customers=data["customers"],
            active=data["active"],
            active_before=data["active_before"],
            returning=data["returning"],
            now=ModelTotals(**data["now"]),
            before=None if before is None else ModelTotals(**before),
        )


def totals(
    features: pl.DataFrame, scores: pl.DataFrame, previous_scores: pl.DataFrame | None
) -> Totals:
    active, active_before, returning = activity(features)
    return Totals(
        customers=features.height,
        active=active,
        active_before=active_before,
        returning=returning,
        now=model_totals(scores),
        before=model_totals(previous_scores) if previous_scores is not None else None,
    )


def _sum(one: ModelTotals, other: ModelTotals) -> ModelTotals:
    return ModelTotals(
        at_risk_customers=one.at_risk_customers + other.at_risk_customers,
        revenue_at_risk=one.revenue_at_risk + other.revenue_at_risk,
        predicted_revenue=one.predicted_revenue + other.predicted_revenue,
    )


def added(shares: list[Totals]) -> Totals:
    """The totals over disjoint shares of the customers. The previous champion's only when
    every share has them (a replica that could not score with it leaves them all null)."""
    first, *rest = shares
    total = first
    for share in rest:
        before = None
        if total.before is not None and share.before is not None:
            before = _sum(total.before, share.before)
        total = Totals(
            customers=total.customers + share.customers,
            active=total.active + share.active,
            active_before=total.active_before + share.active_before,
            returning=total.returning + share.returning,
            now=_sum(total.now, share.now),
            before=before,
        )
    return total


def kpis(
    features: pl.DataFrame,
    scores: pl.DataFrame,
    previous_scores: pl.DataFrame | None,
    comparable_money: bool = True,
) -> list[Kpi]:
    """The six KPIs in the order a console shows them; `previous` from `previous_scores` (the
    previous champion's scores of the same rows), all null without them. `comparable_money`
    false (another LTV horizon) leaves the previous money KPIs null."""
    return kpis_of(totals(features, scores, previous_scores), comparable_money)


def kpis_of(counted: Totals, comparable_money: bool = True) -> list[Kpi]:
    """The KPIs of `counted` (as `kpis`)."""
    customers, active = counted.customers, counted.active
    base = counted.active_before
    retention = counted.returning / base if base else None
    now, before = counted.now, counted.before
    has_previous = before is not None
    money_before = before if comparable_money else None

    def kpi(name: KpiName, label: str, unit: Unit, value: Number, previous: Number) -> Kpi:
        model_dependent = name in ("at_risk_customers", "revenue_at_risk", "predicted_revenue")
        return Kpi(name, label, unit, value, previous, model_dependent)

    return [
        kpi("customers", "Customers", "count", customers, customers if has_previous else None),
        kpi(
            "active_customers",
            "Active customers",
            "count",
            active,
            active if has_previous else None,
        ),
        kpi(
            "at_risk_customers",
            "At-risk customers",
            "count",
            now.at_risk_customers,
            before.at_risk_customers if before else None,
        ),
        kpi(
            "revenue_at_risk",
            "Revenue at risk",
            "currency",
            now.revenue_at_risk,
            money_before.revenue_at_risk if money_before else None,
        ),
        kpi(
            "retention_rate",
            "Retention rate",
            "share",
            retention,
            retention if has_previous else None,
        ),
        kpi(
            "predicted_revenue",
            "Predicted revenue",
            "currency",
            now.predicted_revenue,
            money_before.predicted_revenue if money_before else None,
        ),
    ]


def revenue_at_risk_shares(segments: list[dict]) -> list[float]:
    """Each segment row's share of the tenant's revenue at risk (0 when there is none)."""
    total = sum(row["revenue_at_risk"] for row in segments)
    return [row["revenue_at_risk"] / total if total > 0 else 0.0 for row in segments]
