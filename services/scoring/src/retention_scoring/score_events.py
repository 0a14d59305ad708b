"""`CustomerScore` on `customer-scores` when a customer's risk band, value tier or segment changes.

What was last published per customer is read back from `customer-scores` itself (from its first
offset, at start-up and on), so a restart or a second instance does not announce again what CRM
tools already know; with several instances each announces only the customers of the
`customer-features` partitions it owns (`consumers/duty.py`). Customers are re-scored when their features change (per consumed batch) and
all of a tenant's customers when its champion changes and on every drift check (the clock moves
bands and tiers too, without new orders). Events go out only once the instance is caught up
with `customer-features`, `customer-scores` and `model-events`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from aiokafka import ConsumerRecord

from retention_scoring import telemetry
from retention_scoring.errors import ScoringUnavailable
from retention_scoring.population import Population
from retention_scoring.publishers.customer_scores import CustomerScoresPublisher
from retention_scoring.score_history import ScoreHistory
from retention_scoring.scoring import Explanation, churn_horizon_days
from retention_scoring.state import ScoringState
from retention_shared.events import (
    CustomerScore,
    EventDecodeError,
    RiskBand,
    ValueTier,
    decode_events,
    score_event_id,
)
from retention_shared.tasks import cancel

__all__ = ["CHANGE_FIELDS", "ScoreEvents", "changed_fields", "event_reasons"]

log = logging.getLogger(__name__)

CHANGE_FIELDS = ("risk_band", "value_tier", "segment")
# A chunk not acknowledged is sent again after 0.5, 1, 2 and 4 s before the pass gives up.
SEND_ATTEMPTS = 5
RETRY_SECONDS = 0.5
DEFAULT_CHUNK = 1000
Published = tuple[str, str, str]  # (risk_band, value_tier, segment)


def changed_fields(previous: Published | None, current: Published) -> list[str]:
    """Which of risk_band, value_tier, segment differ (all three for a first score)."""
    if previous is None:
        return list(CHANGE_FIELDS)
    return [name for name, a, b in zip(CHANGE_FIELDS, previous, current, strict=True) if a != b]


def event_reasons(explanation: Explanation) -> list[str]:
    """The reasons as sentences that say which score they move."""
    churn = [f"{r.text} ({r.direction} churn risk)" for r in explanation.churn]
    value = [f"{r.text} ({r.direction} predicted value)" for r in explanation.ltv]
    return churn + value


@dataclass
class ScoreEvents:
    state: ScoringState
    publisher: CustomerScoresPublisher
    ready: Callable[[], bool]
    # Whether this instance announces the customers of a `customer-features` partition
    # (`PublishingDuty.owns`; every partition when it runs alone).
    owns: Callable[[int], bool] = lambda partition: True
    published: dict[str, dict[str, Published]] = field(default_factory=dict)
    # Each customer's recent changes as read back (the app shares it with `ScoringState`).
    history: ScoreHistory = field(default_factory=ScoreHistory)
    # Score events per acknowledged chunk (`RETENTION_SCORING_PUBLISH_CHUNK`).
    chunk_size: int = DEFAULT_CHUNK
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Customers waiting to be re-scored per tenant (ALL: every customer), and the task draining them.
    _pending: dict[str, set[str] | None] = field(default_factory=dict)
    _drains: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def mark(self, tenant_id: str, customers: Iterable[str] | None = None) -> None:
        """Re-score these customers (all with None) soon; bursts coalesce into one pass."""
        if not self.ready():
            return  # the full pass after catching up covers them
        self._wait_for(tenant_id, customers)
        drain = self._drains.get(tenant_id)
        if drain is None or drain.done():
            self._drains[tenant_id] = asyncio.create_task(self._drain(tenant_id))

    def _wait_for(self, tenant_id: str, customers: Iterable[str] | None) -> None:
        if tenant_id in self._pending:
            waiting = self._pending[tenant_id]
            if waiting is not None:
                if customers is None:
                    self._pending[tenant_id] = None
                else:
                    waiting.update(customers)
        else:
            self._pending[tenant_id] = None if customers is None else set(customers)

    async def _drain(self, tenant_id: str) -> None:
        while tenant_id in self._pending:
            customers = self._pending.pop(tenant_id)
            try:
                await self.rescore(tenant_id, customers)
            except Exception:
                log.exception("publishing score changes failed", extra={"tenant_id": tenant_id})
                await asyncio.sleep(1.0)
                # Back in the queue of this same drain: `mark` would not start another while
                # this one runs, so returning here left them waiting for the next trigger. What
                # went out before the failure goes out again, with the same event ids.
                self._wait_for(tenant_id, customers)

    async def stop(self) -> None:
        await cancel(list(self._drains.values()))

    async def read_back(self, records: list[ConsumerRecord]) -> None:
        """Remember what `customer-scores` says was last published (ours or another instance's),
        and each customer's recent changes, in log order."""
        values = [record.value for record in records if record.value is not None]
        decoded = iter(await asyncio.to_thread(decode_events, CustomerScore, values))
        history = self.history
        for record in records:
            if record.value is None:  # a tombstone: the customer was erased
                tenant_id, _, customer_id = (
                    (record.key or b"").decode(errors="replace").partition(":")
                )
                self.published.get(tenant_id, {}).pop(customer_id, None)
                history.erase(tenant_id, customer_id)
                continue
            event = next(decoded)
            if isinstance(event, EventDecodeError):
                continue  # not ours to reject: the topic's producers are scoring instances
            self.published.setdefault(event.tenant_id, {})[event.customer_id] = (
                event.risk_band.value,
                event.value_tier.value,
                event.segment,
            )
            history.record(event.tenant_id, event.customer_id, record.value)

    def let_go(self, held_elsewhere: Callable[[str, str], bool]) -> int:
        """A sharded replica gave partitions away: forget what was announced to, and the
        history of, the customers `held_elsewhere(tenant, customer)` (no tombstones: they are
        not erased, only answered by another replica now). Returns how many."""
        dropped = 0
        for tenant_id in set(self.published) | set(self.history.tenants()):
            known = self.published.get(tenant_id, {})
            customers = set(known) | set(self.history.customers(tenant_id))
            for customer_id in [c for c in customers if held_elsewhere(tenant_id, c)]:
                known.pop(customer_id, None)
                self.history.erase(tenant_id, customer_id)
                dropped += 1
        return dropped

    async def forget(self, tenant_id: str, customer_ids: Iterable[str]) -> int:
        """Erased customers: a tombstone on `customer-scores` for each one this instance knows
        was announced (CRM subscribers delete them; compaction drops their scores). Returns how
        many tombstones it wrote."""
        known = self.published.get(tenant_id, {})
        customer_ids = list(customer_ids)
        for customer_id in customer_ids:
            self.history.erase(tenant_id, customer_id)
        announced = [c for c in customer_ids if known.pop(c, None) is not None]
        # While catching up, the tombstone read is an old one: `customer-scores` has its own.
        if not announced or not self.ready():
            return 0
        await self.publisher.erase(tenant_id, announced)
        return len(announced)

    async def rescore(self, tenant_id: str, customers: Iterable[str] | None = None) -> int:
        """Publish the changes among `customers` (all of the tenant's by default); returns how many."""
        if not self.ready():
            return 0
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            try:
                population = await self.state.population(tenant_id)
            except ScoringUnavailable:
                return 0
            if population is None:
                return 0
            return await self._publish_changes(population, customers)

    async def _publish_changes(
        self, population: Population, customers: Iterable[str] | None
    ) -> int:
        tenant_id = population.champion.tenant_id
        known = self.published.setdefault(tenant_id, {})
        if customers is None:
            positions = np.arange(len(population))
        else:
            found = (population.position(c) for c in customers)
            positions = np.fromiter((p for p in found if p is not None), dtype=np.int64)
        positions = positions[[self.owns(int(p)) for p in population.partitions_at(positions)]]
        # Only the rows asked about: a pass for a few customers does not convert the whole
        # tenant's columns to Python lists.
        asked = population.score_rows(
            positions, ["customer_id", "risk_band", "value_tier", "segment"]
        )
        changes: list[tuple[int, list[str]]] = []
        for p, (customer_id, *current) in zip(positions.tolist(), asked.iter_rows(), strict=True):
            changed = changed_fields(known.get(customer_id), tuple(current))
            if changed:
                changes.append((p, changed))
        if not changes:
            return 0
        sent = 0
        for first in range(0, len(changes), self.chunk_size):
            sent += await self._publish_chunk(population, changes[first : first + self.chunk_size])
        log.info("published score changes", extra={"tenant_id": tenant_id, "count": sent})
        return sent

    async def _publish_chunk(
        self, population: Population, changes: list[tuple[int, list[str]]]
    ) -> int:
        """Explain, build and send one chunk; it counts as announced once acknowledged.

        Bounded chunks put backpressure on a large pass (95k customers sent as one batch timed
        out on a loaded machine: the broker had the records, the acknowledgements came late).
        A chunk that fails is sent again as it was — the same records, event ids and
        `scored_at` — so what went out twice is a duplicate subscribers drop by id, and the
        chunks acknowledged before stay announced."""
        tenant_id = population.champion.tenant_id
        known = self.published.setdefault(tenant_id, {})
        at = np.asarray([p for p, _ in changes], dtype=np.int64)
        explanations = await asyncio.to_thread(population.explanations, at, keep=False)
        rows = population.score_rows(at).to_dicts()
        computed_us = population.computed_at(at).tolist()
        now = datetime.now(UTC)
        champion = population.champion
        churn_horizon = churn_horizon_days(champion.bundle)
        events = []
        for (_, changed), row, explanation in zip(changes, rows, explanations, strict=True):
            customer_id = row["customer_id"]
            current = (row["risk_band"], row["value_tier"], row["segment"])
            events.append(
                CustomerScore(
                    event_id=score_event_id(
                        tenant_id,
                        customer_id,
                        champion.version,
                        row["as_of"],
                        known.get(customer_id),
                        current,
                    ),
                    tenant_id=tenant_id,
                    customer_id=customer_id,
                    churn_probability=row["churn_probability"],
                    risk_band=RiskBand(row["risk_band"]),
                    churn_horizon_days=churn_horizon,
                    predicted_ltv=row["predicted_ltv"],
                    ltv_low=row["ltv_low"],
                    ltv_high=row["ltv_high"],
                    ltv_horizon_days=champion.bundle.ltv.horizon_days,
                    value_tier=ValueTier(row["value_tier"]),
                    segment=row["segment"],
                    action=row["action"],
                    revenue_at_risk=row["revenue_at_risk"],
                    expected_orders=row.get("expected_orders"),
                    next_order_by=row.get("next_order_by"),
                    reasons=event_reasons(explanation),
                    drivers=explanation.structured(),
                    changed=changed,
                    model_version=champion.version,
                    features_as_of=row["as_of"],
                    scored_at=now,
                )
            )
        await self._send(tenant_id, events)
        for row, computed in zip(rows, computed_us, strict=True):
            known[row["customer_id"]] = (row["risk_band"], row["value_tier"], row["segment"])
            telemetry.SCORES.labels(tenant_id, row["risk_band"]).inc()
            telemetry.FEATURE_FRESHNESS.observe(max(0.0, now.timestamp() - computed / 1e6))
        return len(events)

    async def _send(self, tenant_id: str, events: list[CustomerScore]) -> None:
        """Send one chunk until acknowledged, `SEND_ATTEMPTS` times at most (then raise: the
        drain retries what is left unannounced)."""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await self.publisher.send(events)
                return
            except Exception:
                if attempt == SEND_ATTEMPTS:
                    raise
                log.warning(
                    "a chunk of score changes was not acknowledged; sending it again",
                    extra={"tenant_id": tenant_id, "count": len(events), "attempt": attempt},
                    exc_info=True,
                )
                await asyncio.sleep(RETRY_SECONDS * 2 ** (attempt - 1))
