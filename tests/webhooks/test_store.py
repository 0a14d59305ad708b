"""The delivery store: recorded once per event and subscription, due fairly, parked and
redelivered."""

from __future__ import annotations

import time
from pathlib import Path

from retention_webhooks.signing import new_secret
from retention_webhooks.store import DeliveryState, Message, WebhookStore


def _store(tmp_path: Path) -> WebhookStore:
    return WebhookStore(tmp_path / "webhooks.sqlite")


def _message(n: int, tenant: str = "t") -> Message:
    return Message(f"msg_{n}", tenant, "score.changed", b'{"n": %d}' % n)


def test_the_same_event_read_again_is_recorded_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a = store.subscribe("t", "https://a.example/h", ["score.changed"], None, new_secret())
    assert store.record([(_message(1), [a.id])], budget=3) == 1
    assert store.record([(_message(1), [a.id])], budget=3) == 0  # a crash before the commit
    assert len(store.due(time.time() + 1, 10, 4)) == 1


def test_a_backlog_does_not_crowd_out_another_subscription(tmp_path: Path) -> None:
    store = _store(tmp_path)
    slow = store.subscribe("t", "https://slow.example/h", ["score.changed"], None, new_secret())
    other = store.subscribe("t", "https://other.example/h", ["score.changed"], None, new_secret())
    store.record([(_message(n), [slow.id]) for n in range(200)], budget=3)
    store.record([(_message(999), [other.id])], budget=3)
    due = store.due(time.time() + 1, limit=8, per_subscription=2)
    assert other.id in {d.subscription_id for d in due}
    # Even while the slow one's first attempts are under way.
    in_flight = [d.id for d in due if d.subscription_id == slow.id]
    again = store.due(time.time() + 1, limit=8, per_subscription=2, skip=in_flight)
    assert other.id in {d.subscription_id for d in again}
    assert not set(in_flight) & {d.id for d in again}


def test_parked_then_redelivered_with_a_fresh_budget(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a = store.subscribe("t", "https://a.example/h", ["score.changed"], None, new_secret())
    store.record([(_message(1), [a.id])], budget=2)
    (due,) = store.due(time.time() + 1, 10, 4)
    assert store.attempted(due, time.time(), 500, "HTTP 500", time.time()) is DeliveryState.RETRYING
    (due,) = store.due(time.time() + 1, 10, 4)
    assert store.attempted(due, time.time(), 500, "HTTP 500", None) is DeliveryState.PARKED
    assert store.due(time.time() + 1, 10, 4) == []
    assert store.redeliver("other", a.id, due.id, 2) is None, "another tenant's"
    delivery, redelivered = store.redeliver("t", a.id, due.id, 2)  # type: ignore[misc]
    assert redelivered and delivery.state is DeliveryState.PENDING and delivery.attempts == 2
    (due,) = store.due(time.time() + 1, 10, 4)
    assert due.budget == 4 and due.message_id == "msg_1"
    assert store.attempted(due, time.time(), 204, None, None) is DeliveryState.DELIVERED
    delivery, redelivered = store.redeliver("t", a.id, due.id, 2)  # type: ignore[misc]
    assert not redelivered and delivery.state is DeliveryState.DELIVERED


def test_unsubscribing_removes_the_log_and_only_the_tenants_own(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a = store.subscribe("t", "https://a.example/h", ["score.changed"], None, new_secret())
    store.record([(_message(1), [a.id])], budget=2)
    assert not store.unsubscribe("other", a.id)
    assert store.unsubscribe("t", a.id)
    assert store.due(time.time() + 1, 10, 4) == [] and store.subscriptions() == []


def test_erasing_a_customer_forgets_their_messages_sent_or_not(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a = store.subscribe("t", "https://a.example/h", ["score.changed"], None, new_secret())
    mine = Message("msg_1", "t", "score.changed", b'{"customer_id": "17850"}', "17850")
    other = Message("msg_2", "t", "score.changed", b'{"customer_id": "13047"}', "13047")
    theirs = Message("msg_3", "u", "score.changed", b'{"customer_id": "17850"}', "17850")
    store.record([(mine, [a.id]), (other, [a.id]), (theirs, [a.id])], budget=2)
    (first, *_) = store.due(time.time() + 1, 10, 4)
    store.attempted(first, time.time(), 204, None, None)
    assert store.erase_customer("t", "17850") == {"messages": 1, "deliveries": 1}
    left = {d.message_id for _, d in store.deliveries(a.id, 10)}
    assert left == {"msg_2", "msg_3"}, "only that tenant's customer"
    assert store.erase_customer("t", "17850") == {"messages": 0, "deliveries": 0}
