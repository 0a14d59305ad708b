"""The lake watch: growth retrains and the outcome monitor, for tenants whose lake changed.

Every `RETENTION_TRAINER_WATCH_SECONDS` it takes the tenants the lake consumer stored orders for
(on start-up: every tenant in the lake, so nothing a restart interrupted is missed) and

- for those that received streamed orders, asks for a run (trigger `growth`) when the lake has
  grown past the settings since the tenant's latest run read it (`growth.py`);
- for each, evaluates the champion's latest settled score date that has no outcome yet
  (`outcomes.py`), keeps the outcome in the run store, sets the realized gauges and, when the
  ROC-AUC fell more than `RETENTION_OUTCOME_AUC_DROP` below the backtest's, publishes one
  `DriftDetected(kind=performance)` — which the triggers consumer turns into a run.

Outcomes are keyed (model, score date) in the store, so a date is evaluated and announced once
across restarts; an outcome stored but not yet acknowledged by the broker is announced at the
next tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta

from retention_bundle.bundle import ModelBundle
from retention_bundle.model_store import load_bundle
from retention_shared.events import DriftDetected, DriftKind, TimeWindow
from retention_shared.service import ServiceContext
from retention_shared.tasks import cancel
from retention_trainer import telemetry
from retention_trainer.consumers.transactions import LakeConsumer
from retention_trainer.growth import growth_reason, growth_since
from retention_trainer.outcomes import auc_drop, latest_score_date, realized_churn_outcome
from retention_trainer.publishers.drift_events import DriftEventsPublisher
from retention_trainer.runs.execution import LAKE_WAIT_SECONDS
from retention_trainer.runs.queue import RunManager
from retention_trainer.store import ChampionRecord, OutcomeRecord, RunStore, Trigger
from retention_trainer.training_set import cutoff_instant

__all__ = ["LakeWatch"]

log = logging.getLogger(__name__)


class LakeWatch:
    def __init__(self, ctx: ServiceContext, runs: RunManager, lake: LakeConsumer) -> None:
        self.settings = ctx.settings
        self.runs = runs
        self.store: RunStore = runs.store
        self.lake = lake
        self.drift_events = DriftEventsPublisher(ctx)
        self._bundles: dict[str, tuple[str, ModelBundle]] = {}
        self._task: asyncio.Task[None] | None = None

    def restore_gauges(self) -> None:
        """The realized gauges of each champion's latest outcome, as before a restart."""
        for champion in self.store.champions():
            latest = self.store.outcomes(champion.tenant_id, 1)
            if latest and latest[0].model_tag == champion.model_tag:
                set_outcome_gauges(latest[0])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel([self._task])

    async def _run(self) -> None:
        changed, streamed = await self._every_tenant(), set()
        streamed |= changed
        while True:
            failed = await self.check(changed, streamed)
            await asyncio.sleep(self.settings.trainer_watch_seconds)
            changed, streamed = self.lake.take_changed()
            changed |= failed[0]  # a failed check is tried again at the next tick
            streamed |= failed[1]

    async def _every_tenant(self) -> set[str]:
        while True:
            try:
                async with self.lake.reading() as lake:
                    return set(await asyncio.to_thread(lake.tenants))
            except Exception:  # the storage is down: the lake consumer says so on /readyz
                log.exception("lake watch could not list the tenants")
                await asyncio.sleep(self.settings.trainer_watch_seconds)

    async def check(self, changed: set[str], streamed: set[str]) -> tuple[set[str], set[str]]:
        """One tick: growth for `streamed`, outcomes for `changed`, then pending announcements;
        returns the tenants whose outcome and growth checks failed."""
        failed: tuple[set[str], set[str]] = (set(), set())
        for tenant in sorted(streamed):
            try:
                await self.check_growth(tenant)
            except Exception:
                log.exception("lake growth check failed", extra={"tenant_id": tenant})
                failed[1].add(tenant)
        for tenant in sorted(changed):
            try:
                await self.check_outcome(tenant)
            except Exception:
                log.exception("outcome check failed", extra={"tenant_id": tenant})
                failed[0].add(tenant)
        try:
            await self.announce_drifts()
        except Exception:  # the store keeps them unannounced: tried again at the next tick
            log.exception("could not announce a performance drift")
        return failed

    async def check_growth(self, tenant: str) -> None:
        baseline = None
        for record in self.store.list(tenant, limit=20):
            read = growth_since(record.data)
            if read is None and not record.status.finished:
                return  # a queued run will read everything there is
            if read is not None:
                baseline = read
                break
        if baseline is None:
            return  # no run yet: the first one comes from an upload, a request or the schedule
        async with self.lake.reading() as lake:
            extent = await asyncio.to_thread(lake.extent, tenant)
        reason = growth_reason(
            baseline,
            extent,
            orders_share=self.settings.retrain_growth_orders_share,
            days=self.settings.retrain_growth_days,
        )
        if reason is not None:
            record = self.runs.submit(tenant, Trigger("growth", reason))
            log.info(
                "lake growth retrain",
                extra={"tenant_id": tenant, "run_id": record.run_id, "detail": reason},
            )

    async def check_outcome(self, tenant: str) -> None:
        champion = self.store.champion(tenant)
        if champion is None:
            return
        bundle = await self._bundle(champion)
        if bundle is None or bundle.production is None:
            return  # bundles from before the production fit do not say when their data ended
        churn = bundle.windows.churn
        async with self.lake.reading() as lake:
            _, last_order = await asyncio.to_thread(lake.extent, tenant)
        score_date = latest_score_date(
            bundle.production.data_end, last_order, churn.horizon_days, churn.every_days
        )
        if score_date is None or self.store.outcome(champion.model_tag, score_date):
            return
        # Settled in one partition is not settled in all (tenants' orders spread over them):
        # as a run does, read the lake once it holds everything on `transactions` now.
        await self.lake.wait_caught_up(LAKE_WAIT_SECONDS)
        async with self.lake.reading() as lake:
            orders = await asyncio.to_thread(lake.orders, tenant)
        last_order = orders["occurred_at"].max() if not orders.is_empty() else None
        score_date = latest_score_date(
            bundle.production.data_end, last_order, churn.horizon_days, churn.every_days
        )
        if score_date is None or self.store.outcome(champion.model_tag, score_date):
            return
        try:
            realized = await asyncio.to_thread(realized_churn_outcome, bundle, orders, score_date)
        except ValueError as error:  # the data says no (no customers, another feature schema)
            log.warning(
                "outcome not measurable",
                extra={"tenant_id": tenant, "model_tag": champion.model_tag, "detail": str(error)},
            )
            return
        expected_auc = bundle.report.churn.model.roc_auc
        drop = auc_drop(realized.roc_auc, expected_auc)
        drifted = drop > self.settings.outcome_auc_drop  # False when either is NaN
        outcome = OutcomeRecord(
            tenant_id=tenant,
            model_tag=champion.model_tag,
            score_date=score_date,
            horizon_days=realized.horizon_days,
            customers=realized.customers,
            churners=realized.churners,
            roc_auc=_finite(realized.roc_auc),
            brier=realized.brier,
            backtest_roc_auc=_finite(expected_auc),
            backtest_brier=_finite(bundle.report.churn.model.brier),
            auc_drop=_finite(drop),
            drift=drifted,
            evaluated_at=datetime.now(UTC),
        )
        self.store.add_outcome(outcome)
        set_outcome_gauges(outcome)
        log.info("realized outcome", extra={"tenant_id": tenant, **outcome.as_dict()})

    async def announce_drifts(self) -> None:
        for outcome in self.store.unannounced_drifts():
            champion = self.store.champion(outcome.tenant_id)
            if champion is None or champion.model_tag != outcome.model_tag:
                # A newer champion replaced it: retraining for the old one is moot.
                self.store.mark_announced(outcome.model_tag, outcome.score_date)
                continue
            await self.drift_events.publish(
                performance_drift(outcome, self.settings.outcome_auc_drop)
            )
            self.store.mark_announced(outcome.model_tag, outcome.score_date)
            log.warning(
                "performance drift detected",
                extra={"tenant_id": outcome.tenant_id, **outcome.as_dict()},
            )

    async def _bundle(self, champion: ChampionRecord) -> ModelBundle | None:
        """The champion's bundle, loaded once per champion (kept per tenant)."""
        kept = self._bundles.get(champion.tenant_id)
        if kept is not None and kept[0] == champion.model_tag:
            return kept[1]
        try:
            bundle = await asyncio.to_thread(load_bundle, champion.model_tag)
        except Exception:
            log.exception("champion bundle unreadable", extra={"model_tag": champion.model_tag})
            return None
        self._bundles[champion.tenant_id] = (champion.model_tag, bundle)
        return bundle


def performance_drift(outcome: OutcomeRecord, threshold: float) -> DriftDetected:
    """The `DriftDetected` an outcome over the drop announces: its score date to the end of its
    horizon, the realized and the backtest's numbers."""
    start = cutoff_instant(outcome.score_date)
    return DriftDetected(
        tenant_id=outcome.tenant_id,
        model_version=outcome.model_tag.split(":", 1)[-1],
        kind=DriftKind.PERFORMANCE,
        threshold=threshold,
        window=TimeWindow(start=start, end=start + timedelta(days=outcome.horizon_days)),
        realized=_present({"roc_auc": outcome.roc_auc, "brier": outcome.brier}),
        expected=_present({"roc_auc": outcome.backtest_roc_auc, "brier": outcome.backtest_brier}),
    )


def set_outcome_gauges(outcome: OutcomeRecord) -> None:
    if outcome.roc_auc is not None:
        telemetry.REALIZED_ROC_AUC.labels(outcome.tenant_id).set(outcome.roc_auc)
    telemetry.REALIZED_BRIER.labels(outcome.tenant_id).set(outcome.brier)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _present(values: dict[str, float | None]) -> dict[str, float]:
    return {name: value for name, value in values.items() if value is not None}
