"""Every `RETENTION_DRIFT_CHECK_MINUTES`: PSI of each model feature, live population vs reference.

The live population is every customer of the tenant with features moved to the tenant clock —
the rows the model scores now. PSI per feature goes to `retention_scoring_drift_psi`. When any
feature is over `RETENTION_DRIFT_PSI_THRESHOLD`, `DriftDetected` goes to `drift-events` once per
model version and drift episode: the first check over the threshold publishes, later checks
that stay over do not, and a check with every feature back under ends the episode (a new model
starts a new one). The event's window runs from the tenant clock at the model's first check to
the clock of this one: the live data the shift was found in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from retention_scoring import telemetry
from retention_scoring.drift import feature_psi
from retention_scoring.errors import ScoringUnavailable
from retention_scoring.publishers.drift_events import DriftEventsPublisher
from retention_scoring.state import DriftStatus, ScoringState
from retention_scoring.store import from_microseconds
from retention_shared.events import DriftDetected, TimeWindow

log = logging.getLogger(__name__)


@dataclass
class DriftWatch:
    state: ScoringState
    publisher: DriftEventsPublisher
    ready: Callable[[], bool]
    # Whether this instance announces drift (one instance does: `PublishingDuty.lead`).
    lead: Callable[[], bool] = lambda: True
    # Also run on every tick (the full re-score of score events).
    on_tick: Callable[[str], None] = lambda tenant_id: None
    _first_clock: dict[tuple[str, str], int] = field(default_factory=dict)

    async def run(self) -> None:
        interval = self.state.settings.drift_check_minutes * 60
        while not self.ready():
            await asyncio.sleep(0.5)
        while True:
            for tenant_id in list(self.state.store.tenants):
                try:
                    await self.check(tenant_id)
                except Exception:
                    log.exception("drift check failed", extra={"tenant_id": tenant_id})
                self.on_tick(tenant_id)
            await asyncio.sleep(interval)

    async def check(self, tenant_id: str) -> DriftStatus | None:
        try:
            population = await self.state.population(tenant_id)
        except ScoringUnavailable:
            return None
        if population is None:
            return None
        champion = population.champion
        bundle = champion.bundle
        reference = {n: bundle.reference[n] for n in bundle.feature_names if n in bundle.reference}
        found = await asyncio.to_thread(feature_psi, reference, population.features)
        for feature, value in found.items():
            telemetry.DRIFT_PSI.labels(tenant_id, feature).set(value)
        threshold = self.state.settings.drift_psi_threshold
        drifted = sorted(f for f, v in found.items() if v > threshold)
        clock_us = population.key[2]
        first_clock = self._first_clock.setdefault((tenant_id, champion.version), clock_us)
        previous = self.state.drift.get(tenant_id)
        status = DriftStatus(
            model_version=champion.version,
            checked_at=datetime.now(UTC),
            psi=found,
            threshold=threshold,
            drifted=drifted,
        )
        ongoing = (
            previous is not None
            and previous.model_version == champion.version
            and previous.drifted
            and previous.published_at is not None
        )
        if drifted and ongoing:
            assert previous is not None
            status.published_at = previous.published_at
        elif drifted and self.lead():
            event = DriftDetected(
                tenant_id=tenant_id,
                model_version=champion.version,
                psi=found,
                threshold=threshold,
                window=TimeWindow(
                    start=from_microseconds(first_clock), end=from_microseconds(clock_us)
                ),
            )
            await self.publisher.send(event)
            status.published_at = event.detected_at
            log.warning(
                "feature drift detected",
                extra={"tenant_id": tenant_id, "features": drifted, "version": champion.version},
            )
        self.state.drift[tenant_id] = status
        return status
