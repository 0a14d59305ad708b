"""The scoring service: materialized features, champion models, scores with reasons, events.

Three topics are read whole by every instance (no consumer group): `customer-features` into
the feature store, `model-events` into the champions, `customer-scores` into what was last
published (the Kafka kit's `TopicReader`). A consumer group on `customer-features` that never
fetches splits the duty of announcing score changes and drift between instances
(`consumers/duty.py`). What goes out is in `publishers/`. Readiness:
connected, and caught up with all three (against the high watermarks seen at start-up), and
every announced champion through its first load attempt. A tenant without a champion does not
make the instance unready: it answers that tenant's score requests with 503 and a reason, and
`/readyz` names it (with no tenants at all, the instance is ready).
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from retention_scoring import erasure, telemetry
from retention_scoring.api import (
    campaigns,
    customers,
    erasures,
    insights,
    model,
    ping,
    score_history,
    scores,
    segment_profiles,
    segments,
)
from retention_scoring.champions import Champions, LoadedChampion, fetch_bundle
from retention_scoring.consumers.customer_features import FeaturesConsumer, Touched
from retention_scoring.consumers.duty import PublishingDuty
from retention_scoring.consumers.model_events import ModelEventsConsumer
from retention_scoring.drift_watch import DriftWatch
from retention_scoring.erasure_ledger import ErasureLedger
from retention_scoring.population import Populations
from retention_scoring.publishers.customer_erasures import CustomerErasuresPublisher
from retention_scoring.publishers.customer_scores import CustomerScoresPublisher
from retention_scoring.publishers.drift_events import DriftEventsPublisher
from retention_scoring.score_events import ScoreEvents
from retention_scoring.state import ScoringState, tenant_clock
from retention_scoring.store import FeatureStore
from retention_shared.config import Settings
from retention_shared.erasure import subscribe_erasures
from retention_shared.health import CheckResult
from retention_shared.kafka.bulk_producer import BulkProducer
from retention_shared.kafka.dead_letters import DeadLetters
from retention_shared.kafka.topic_reader import TopicReader
from retention_shared.service import ServiceContext, create_service_app
from retention_shared.tasks import cancel

HOUSEKEEPING_SECONDS = 15.0


def create_app(settings: Settings) -> FastAPI:
    ctx = ServiceContext.create("scoring", settings)
    producer = BulkProducer(settings)
    champions = Champions(load=lambda tag: asyncio.to_thread(fetch_bundle, tag, settings))
    state = ScoringState(
        settings=settings,
        store=FeatureStore(),
        champions=champions,
        populations=Populations(tenant_clock(settings)),
    )
    readers: list[TopicReader] = []

    def caught_up() -> bool:
        return all(reader.caught_up.is_set() for reader in readers)

    def rescore_all() -> None:
        for tenant_id in list(state.store.tenants):
            score_events.mark(tenant_id)

    duty = PublishingDuty(ctx, on_change=rescore_all)
    score_events = ScoreEvents(
        state,
        CustomerScoresPublisher(ctx, producer),
        ready=caught_up,
        owns=duty.owns,
        history=state.history,
    )

    def features_changed(touched: Touched) -> None:
        for tenant_id, customer_ids in touched.items():
            score_events.mark(tenant_id, customer_ids)

    forgetting: set[asyncio.Task[int]] = set()

    def customers_erased(removed: Touched) -> None:
        for tenant_id, customer_ids in removed.items():
            task = asyncio.create_task(score_events.forget(tenant_id, customer_ids))
            forgetting.add(task)
            task.add_done_callback(forgetting.discard)

    async def champion_swapped(champion: LoadedChampion) -> None:
        score_events.mark(champion.tenant_id)

    async def reader_caught_up() -> None:
        if caught_up():  # the last of the three: one full pass over every tenant
            rescore_all()

    champions.on_swap.append(champion_swapped)
    features = FeaturesConsumer(
        state.store,
        DeadLetters(ctx, producer),
        on_change=features_changed,
        on_removed=customers_erased,
    )
    subscribe_erasures(
        ctx, erasure.GROUP_ID, ctx.name, erasure.ScoringErasure(state.store, score_events).erase
    )
    models = ModelEventsConsumer(champions, ctx.counts)

    async def models_caught_up() -> None:
        await models.start_serving()
        await reader_caught_up()

    features_reader = TopicReader(
        ctx,
        "customer-features",
        features.handle,
        lag=telemetry.CONSUMER_LAG,
        on_caught_up=reader_caught_up,
    )
    scores_reader = TopicReader(
        ctx, "customer-scores", score_events.read_back, on_caught_up=reader_caught_up
    )
    models_reader = TopicReader(ctx, "model-events", models.handle, on_caught_up=models_caught_up)
    readers.extend([features_reader, scores_reader, models_reader])
    # Not in `readers`: what became of erasures does not hold up scores.
    ledger = ErasureLedger()
    ledger_readers = [
        TopicReader(ctx, "customer-erasures", ledger.read_requests),
        TopicReader(ctx, "erasure-audit", ledger.read_audit),
    ]
    drift = DriftWatch(
        state,
        DriftEventsPublisher(ctx, producer),
        ready=caught_up,
        lead=duty.lead,
        on_tick=score_events.mark,
    )
    tasks: list[asyncio.Task[None]] = []

    async def housekeeping() -> None:
        while True:
            champions.observe_age()
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def start() -> None:
        await producer.start()
        for reader in [*readers, *ledger_readers]:
            await reader.start()
        await duty.start()
        tasks.append(asyncio.create_task(drift.run(), name="drift checks"))
        tasks.append(asyncio.create_task(housekeeping(), name="housekeeping"))

    async def stop() -> None:
        await cancel([*tasks, *forgetting])
        await duty.stop()
        await score_events.stop()
        await champions.stop()
        for reader in [*readers, *ledger_readers]:
            await reader.stop()
        await producer.stop()

    async def models_check() -> CheckResult:
        ok, detail = models_reader.status()
        loading = champions.first_loads_pending()
        if ok and loading:
            return False, f"loading the champion of {', '.join(loading)}"
        return ok, detail

    async def champions_check() -> CheckResult:
        tenants = sorted(set(state.store.tenants) | set(champions.announced))
        missing = [t for t in tenants if champions.get(t) is None]
        if not tenants:
            return True, "no tenants yet"
        if not missing:
            return True, f"every tenant has a champion ({len(tenants)})"
        reasons = "; ".join(
            f"{t}: {champions.problems.get(t, 'no model published yet')}" for t in missing
        )
        return True, f"tenants without a champion (their scores answer 503): {reasons}"

    ctx.readiness.add("customer-features", features_reader.check)
    ctx.readiness.add("customer-scores", scores_reader.check)
    ctx.readiness.add("model-events", models_check)
    ctx.readiness.add("champions", champions_check)
    app = create_service_app(
        ctx,
        description="Real-time churn, lifetime value and segment scores with reasons.",
        routers=[
            customers.router,
            score_history.router,
            insights.router,
            erasures.router,
            scores.router,
            segments.router,
            segment_profiles.router,
            campaigns.router,
            model.router,
            ping.router,
        ],
        on_connected=[start],
        on_stopping=[stop],
    )
    app.state.scoring = state
    app.state.erasures = ledger
    app.state.erasure_requests = CustomerErasuresPublisher(ctx)
    return app
