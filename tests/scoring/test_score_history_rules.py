"""Score history: the last changes per customer as read back from `customer-scores`, in log order,
bounded, and gone with the customer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from retention_scoring.erasure import ScoringErasure
from retention_scoring.publishers.customer_scores import CustomerScoresPublisher
from retention_scoring.score_events import ScoreEvents
from retention_scoring.score_history import ScoreHistory
from retention_scoring.store import FeatureStore
from retention_shared.config import Settings
from retention_shared.events import CustomerErasureRequested, CustomerScore, RiskBand, ValueTier
from retention_shared.service import ServiceContext
from retention_shared.topics import customer_key


def _score(customer_id: str, probability: float, tenant_id: str = "acme") -> CustomerScore:
    return CustomerScore(
        tenant_id=tenant_id,
        customer_id=customer_id,
        churn_probability=probability,
        risk_band=RiskBand.HIGH if probability >= 0.6 else RiskBand.LOW,
        predicted_ltv=100.0,
        ltv_low=0.0,
        ltv_high=200.0,
        value_tier=ValueTier.MEDIUM,
        segment="At risk",
        action="Call them.",
        changed=["risk_band"],
        model_version="v1",
        features_as_of=datetime(2011, 12, 9, tzinfo=UTC),
    )


def _record(offset: int, tenant_id: str, customer_id: str, event: CustomerScore | None):
    value = event.to_bytes() if event is not None else None
    key = customer_key(tenant_id, customer_id)
    return ConsumerRecord("customer-scores", 0, offset, 0, 0, key, value, None, 0, 0, [])


class RecordingProducer:
    started = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, list]] = []

    async def send_all(self, topic: str, records: list) -> int:
        self.sent.append((topic, list(records)))
        return len(records)


def _events() -> ScoreEvents:
    ctx = ServiceContext.create("scoring", Settings())
    publisher = CustomerScoresPublisher(ctx, RecordingProducer())  # type: ignore[arg-type]
    return ScoreEvents(None, publisher, ready=lambda: True)  # type: ignore[arg-type]


def test_the_ring_keeps_the_last_changes_newest_first() -> None:
    history = ScoreHistory(kept=3)
    for i in range(5):
        history.record("acme", "c1", _score("c1", i / 10).to_bytes())
    assert [e.churn_probability for e in history.latest("acme", "c1", 10)] == [0.4, 0.3, 0.2]
    assert [e.churn_probability for e in history.latest("acme", "c1", 2)] == [0.4, 0.3]
    assert history.latest("acme", "unknown", 5) == [] and history.latest("other", "c1", 5) == []


def test_read_back_follows_the_log_order_of_changes_and_tombstones() -> None:
    events = _events()
    log = [
        _record(0, "acme", "gone", _score("gone", 0.7)),
        _record(1, "acme", "gone", None),  # erased after its score: nothing kept
        _record(2, "acme", "back", None),
        _record(3, "acme", "back", _score("back", 0.2)),  # scored again after a tombstone
        _record(4, "acme", "c1", _score("c1", 0.7)),
        _record(5, "acme", "c1", _score("c1", 0.2)),
        _record(6, "other", "c1", _score("c1", 0.9, tenant_id="other")),
    ]
    asyncio.run(events.read_back(log))
    assert events.history.latest("acme", "gone", 5) == []
    assert "gone" not in events.published["acme"]
    assert [e.churn_probability for e in events.history.latest("acme", "back", 5)] == [0.2]
    assert events.published["acme"]["back"] == ("low", "Medium", "At risk")
    changes = events.history.latest("acme", "c1", 5)
    assert [e.churn_probability for e in changes] == [0.2, 0.7]
    assert changes[0] == _score("c1", 0.2).model_copy(update={"scored_at": changes[0].scored_at})
    assert [e.churn_probability for e in events.history.latest("other", "c1", 5)] == [0.9]


def test_an_erased_customer_loses_their_history_at_once() -> None:
    events = _events()
    asyncio.run(events.read_back([_record(0, "acme", "c1", _score("c1", 0.7))]))
    asyncio.run(events.read_back([_record(1, "acme", "c2", _score("c2", 0.7))]))
    request = CustomerErasureRequested(
        erasure_id="e1",
        tenant_id="acme",
        customer_id="c1",
        requested_at=datetime.now(UTC),
        requested_by="acme/admin/key:0",
    )
    removed = asyncio.run(ScoringErasure(FeatureStore(), events).erase(request))
    assert removed == {"customers": 0, "score_changes": 1}
    assert events.history.latest("acme", "c1", 5) == []
    # A features tombstone (another instance's erasure) forgets the history too.
    asyncio.run(events.forget("acme", ["c2"]))
    assert events.history.latest("acme", "c2", 5) == []
