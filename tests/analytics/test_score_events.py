"""`CustomerScore` on `customer-scores` is the HTTP score: every customer of the running stack.

Read-only on the shared analytics stack (the UCI slice scored by its trained champion).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from retention_cli.stack import Stack
from retention_shared.events import CustomerScore, decode_event, score_event_id
from retention_shared.topics import Topics
from tests.support.kafka_reading import read_until
from tests.support.stack import auth, url

pytestmark = pytest.mark.slow

# The fields the event and the HTTP score (`ScoreView`) share; the event's `drivers` is the
# score's `reasons`.
COMMON = (
    "customer_id",
    "churn_probability",
    "risk_band",
    "churn_horizon_days",
    "predicted_ltv",
    "ltv_low",
    "ltv_high",
    "ltv_horizon_days",
    "value_tier",
    "segment",
    "action",
    "revenue_at_risk",
    "expected_orders",
    "next_order_by",
    "features_as_of",
    "model_version",
)


def test_every_customers_latest_event_equals_their_http_score(loaded_stack: Stack) -> None:
    base = url(loaded_stack, "scoring")
    listed = httpx.get(f"{base}/v1/customers", params={"limit": 10_000}, headers=auth()).json()
    ids = [row["customer_id"] for row in listed["customers"]]
    topic = Topics.with_prefix(loaded_stack.settings.topic_prefix).customer_scores

    def announced(records: list) -> dict[str, list[CustomerScore]]:
        found: dict[str, list[CustomerScore]] = {}
        for record in records:
            if record.value is not None:
                event = decode_event(CustomerScore, record.value)
                found.setdefault(event.customer_id, []).append(event)
        return found

    records = asyncio.run(
        read_until(loaded_stack.settings, topic, lambda r: len(announced(r)) >= len(ids))
    )
    events = announced(records)
    scores = {}
    for start in range(0, len(ids), 1000):
        answer = httpx.post(
            f"{base}/v1/score", json={"customer_ids": ids[start : start + 1000]}, headers=auth()
        ).json()
        scores.update({r["customer_id"]: r["score"] for r in answer["results"]})
    assert set(events) == set(scores) == set(ids)

    for customer_id, history in events.items():
        latest = history[-1].model_dump(mode="json")
        score = scores[customer_id]
        assert {f: latest[f] for f in COMMON} == {f: score[f] for f in COMMON}, customer_id
        assert latest["drivers"] == score["reasons"], customer_id
        assert latest["churn_horizon_days"] > 0 and latest["ltv_horizon_days"] > 0
        # Each announcement's id is the hash of what it announces and the state it leaves.
        previous = None
        for event in history:
            current = (event.risk_band.value, event.value_tier.value, event.segment)
            assert event.event_id == score_event_id(
                "default",
                customer_id,
                event.model_version,
                event.features_as_of,
                previous,
                current,
            )
            previous = current
    every_id = [e.event_id for history in events.values() for e in history]
    assert len(set(every_id)) == len(every_id)
