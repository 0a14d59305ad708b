"""Point-in-time training sets: features at cutoffs (the shared definition) and labels after them.

**Cutoffs are dates.** A cutoff date ``D`` means "everything known at the end of day ``D``
(UTC)": its instant is midnight starting ``D + 1``. Features use orders with
``occurred_at <= instant``; labels use orders in ``(instant, instant + horizon]``. So the default
test cutoff, *last event date − horizon*, has a label window that ends exactly at the end of the
last event's day: the last complete window is the test set (on the UCI files: churn 2011-09-10,
LTV 2011-06-12 for a last order on 2011-12-09).

**Labels** of one customer at cutoff ``c``:

- ``churned`` = 1 when the customer places no purchase order in ``(c, c + churn horizon]``;
- ``future_spend`` = net spend (purchases plus negative cancellations) in ``(c, c + LTV horizon]``;
- ``future_orders`` = purchase orders in ``(c, c + churn horizon]`` (``churned`` is
  ``future_orders == 0``): the label of the expected-orders model.

Only customers with at least one purchase at or before ``c`` are examples.

**Windows of one task** (horizon ``H``, test cutoff ``T``, cutoffs every ``step`` days on a grid
anchored at ``T``, i.e. ``T − k·step``):

- *test*: cutoff ``T``; its labels are the only ones that read orders after ``T``.
- *validation*: the latest grid cutoff ``V`` whose label window ends at or before ``T``
  (``V + H <= T``). A later cutoff (say ``T − step``) would have a label window reaching past ``T``,
  so a threshold or calibration fitted on it would have seen test-period orders.
- *training*: grid cutoffs ``c`` whose label windows end at or before ``V`` (``c + H <= V``), so
  the validation labels are out of sample for the model they calibrate and early-stop. Applied
  to ``V`` the rule is the same one that keeps ``V`` honest towards ``T``. The earliest usable
  cutoff has at least ``step`` days of history.

Everything is vectorized in polars: one pass of the shared feature code over all cutoffs, which
also reads the labels from the same per-customer running totals (its outcome windows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from retention_shared.features import FEATURE_NAMES, compute_features_at_cutoffs

__all__ = [
    "CHURN_HORIZON_DAYS",
    "CUTOFF_EVERY_DAYS",
    "KEY",
    "LTV_HORIZON_DAYS",
    "TaskWindows",
    "cutoff_instant",
    "last_event_date",
    "plan_windows",
    "production_cutoffs",
    "training_examples",
]

CHURN_HORIZON_DAYS = 90
LTV_HORIZON_DAYS = 180
CUTOFF_EVERY_DAYS = 30
KEY = ["tenant_id", "customer_id"]


def cutoff_instant(cutoff: date) -> datetime:
    """The instant a cutoff date stands for: the end of that day, UTC (midnight of the next)."""
    return datetime.combine(cutoff + timedelta(days=1), time(0), tzinfo=UTC)


def last_event_date(orders: pl.DataFrame | pl.LazyFrame) -> date:
    """The UTC date of the latest order in the frame."""
    latest = orders.lazy().select(pl.col("occurred_at").max()).collect().item()
    if latest is None:
        raise ValueError("orders frame is empty: no history to cut")
    return latest.astimezone(UTC).date()


def _first_event_date(orders: pl.DataFrame | pl.LazyFrame) -> date:
    return orders.lazy().select(pl.col("occurred_at").min()).collect().item().astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class TaskWindows:
    """The cutoffs of one prediction task (churn or LTV); see the module docstring."""

    task: str
    horizon_days: int
    every_days: int
    test_cutoff: date
    validation_cutoff: date
    training_cutoffs: tuple[date, ...]

    @property
    def all_cutoffs(self) -> tuple[date, ...]:
        return (*self.training_cutoffs, self.validation_cutoff, self.test_cutoff)

    def as_dict(self) -> dict[str, object]:
        """JSON-able: dates as ISO strings."""
        return {
            "task": self.task,
            "horizon_days": self.horizon_days,
            "every_days": self.every_days,
            "test_cutoff": self.test_cutoff.isoformat(),
            "validation_cutoff": self.validation_cutoff.isoformat(),
            "training_cutoffs": [c.isoformat() for c in self.training_cutoffs],
        }

    @classmethod
    def from_dict(cls, data: dict) -> TaskWindows:
        return cls(
            task=str(data["task"]),
            horizon_days=int(data["horizon_days"]),
            every_days=int(data["every_days"]),
            test_cutoff=date.fromisoformat(data["test_cutoff"]),
            validation_cutoff=date.fromisoformat(data["validation_cutoff"]),
            training_cutoffs=tuple(date.fromisoformat(c) for c in data["training_cutoffs"]),
        )


def plan_windows(
    orders: pl.DataFrame | pl.LazyFrame,
    *,
    task: str,
    horizon_days: int,
    test_cutoff: date | None = None,
    every_days: int = CUTOFF_EVERY_DAYS,
) -> TaskWindows:
    """Test, validation and training cutoffs of one task over the orders' history.

    ``test_cutoff`` defaults to the last event date minus ``horizon_days``. Raises ValueError
    when the history is too short to hold a training cutoff before the validation one.
    """
    if horizon_days <= 0 or every_days <= 0:
        raise ValueError("horizon_days and every_days must be positive")
    last = last_event_date(orders)
    test = test_cutoff if test_cutoff is not None else last - timedelta(days=horizon_days)
    if test + timedelta(days=horizon_days) > last + timedelta(days=1):
        raise ValueError(
            f"{task} test cutoff {test} + {horizon_days} days runs past the last event ({last})"
        )
    earliest = _first_event_date(orders) + timedelta(days=every_days)
    steps_back = -(-horizon_days // every_days)  # ceil: first grid cutoff with V + H <= T
    validation = test - timedelta(days=steps_back * every_days)
    training = []
    k = steps_back
    while True:
        k += 1
        cutoff = test - timedelta(days=k * every_days)
        if cutoff < earliest:
            break
        if cutoff + timedelta(days=horizon_days) <= validation:
            training.append(cutoff)
    if validation < earliest or not training:
        raise ValueError(
            f"history from {_first_event_date(orders)} to {last} is too short for a {task} "
            f"backtest at {test} with a {horizon_days}-day horizon"
        )
    return TaskWindows(
        task=task,
        horizon_days=horizon_days,
        every_days=every_days,
        test_cutoff=test,
        validation_cutoff=validation,
        training_cutoffs=tuple(sorted(training)),
    )


def production_cutoffs(
    orders: pl.DataFrame | pl.LazyFrame, *, horizon_days: int, every_days: int = CUTOFF_EVERY_DAYS
) -> tuple[date, ...]:
    """The latest cutoffs whose labels are complete, for the production refit: the same spacing
    rule as :func:`plan_windows`'s training cutoffs, anchored at *last event date − horizon*
    (``L − H − k·step``, back to the earliest usable cutoff). Oldest first; empty when the history
    is shorter than one horizon plus one step."""
    if horizon_days <= 0 or every_days <= 0:
        raise ValueError("horizon_days and every_days must be positive")
    latest = last_event_date(orders) - timedelta(days=horizon_days)
    earliest = _first_event_date(orders) + timedelta(days=every_days)
    cutoffs = []
    while latest >= earliest:
        cutoffs.append(latest)
        latest -= timedelta(days=every_days)
    return tuple(reversed(cutoffs))


def training_examples(
    orders: pl.DataFrame | pl.LazyFrame,
    cutoffs: Iterable[date],
    *,
    churn_horizon_days: int = CHURN_HORIZON_DAYS,
    ltv_horizon_days: int = LTV_HORIZON_DAYS,
) -> pl.DataFrame:
    """Features (shared definition) and labels of every purchasing customer at every cutoff.

    Returns ``tenant_id, customer_id, cutoff`` (the cutoff *date*), the ``FEATURE_NAMES``
    columns, ``churned``, ``future_spend`` and ``future_orders``, sorted by cutoff and customer. Labels of a cutoff
    whose windows run past the data are incomplete: callers use them only as
    :func:`plan_windows` allows.
    """
    dates = sorted(set(cutoffs))
    if not dates:
        raise ValueError("no cutoffs given")
    instants = pl.DataFrame(
        {"cutoff": [cutoff_instant(d) for d in dates]},
        schema={"cutoff": pl.Datetime("us", "UTC")},
    )
    # Labels come from the same running totals as the features (one pass), read after the cutoff.
    examples = compute_features_at_cutoffs(
        orders, instants, outcome_days=sorted({churn_horizon_days, ltv_horizon_days})
    )
    return (
        examples.lazy()
        .filter(pl.col("frequency") >= 1)
        .select(
            *KEY,
            (pl.col("cutoff") - pl.duration(days=1)).dt.date().alias("cutoff"),
            *FEATURE_NAMES,
            churned=(pl.col(f"orders_next_{churn_horizon_days}d") == 0).cast(pl.Int8),
            future_spend=pl.col(f"spend_next_{ltv_horizon_days}d"),
            future_orders=pl.col(f"orders_next_{churn_horizon_days}d"),
        )
        # Rows come in customer order within each cutoff: a stable sort by cutoff suffices.
        .sort("cutoff", maintain_order=True)
        .collect()
    )
