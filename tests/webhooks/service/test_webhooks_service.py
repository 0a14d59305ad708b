"""Webhooks on the real broker with every service running: the UCI slice is uploaded, a model
trained and published, every customer scored and drift found (a tiny PSI threshold), and a
receiver on loopback gets each event signed, once; a flaky one gets it on the fourth try with
the same webhook-id; one that stays down has it parked until it is redelivered."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from retention_cli.stack import SERVICES, WEBHOOKS, Stack
from retention_shared.embedded_broker import EmbeddedBroker
from retention_shared.events import (
    CustomerErased,
    CustomerScore,
    DriftDetected,
    ModelEvent,
    ModelPublished,
    UploadCompleted,
    decode_event,
)
from retention_shared.topics import Topics
from retention_webhooks.signing import new_secret, verify
from tests.support.features_service import read_to_end
from tests.support.kafka_reading import read_until
from tests.support.problems import field_problems
from tests.support.stack import API_KEY, READ_KEY, auth, stack_of_its_own, upload_file, url
from tests.support.uci_orders import TEST_DATA
from tests.webhooks.service.receiver import FLAKY_FAILURES, Receiver

pytestmark = pytest.mark.slow

SLICE = TEST_DATA / "online_retail_slice.parquet"
OTHER_KEY = "e2e-other"
ALL_TYPES = ["score.changed", "model.published", "drift.detected", "upload.completed"]
MAX_ATTEMPTS = 4


def wait_for(what: str, found: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := found():
            return value
        time.sleep(0.3)
    raise TimeoutError(what)


def hooks(stack: Stack) -> str:
    return f"{url(stack, 'webhooks')}/v1/webhooks"


def subscribe(stack: Stack, target: str, types: list[str], key: str = API_KEY) -> httpx.Response:
    return httpx.post(
        hooks(stack), json={"url": target, "event_types": types}, headers=auth(key), timeout=30
    )


def fields_of(response: httpx.Response) -> list[str]:
    """The fields a problem+json error names (checking it is one)."""
    return [field for field, _ in field_problems(response)]


def deliveries(stack: Stack, webhook_id: str, key: str = API_KEY) -> list[dict]:
    """The whole delivery log, every page."""
    found: list[dict] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        response = httpx.get(
            f"{hooks(stack)}/{webhook_id}/deliveries", params=params, headers=auth(key)
        )
        assert response.status_code == 200, response.text
        found += response.json()["deliveries"]
        if response.json()["next_cursor"] is None:
            return found
        params["cursor"] = response.json()["next_cursor"]


class World:
    """The running stack, the receiver, and the subscriptions made before any event."""

    def __init__(self, stack: Stack, receiver: Receiver) -> None:
        self.stack, self.receiver = stack, receiver
        self.created: dict[str, dict] = {}
        for name, path, types, key in [
            ("all", "/ok/all", ALL_TYPES, API_KEY),
            ("flaky", "/flaky/upload", ["upload.completed"], API_KEY),
            ("down", "/down/upload", ["upload.completed"], API_KEY),
            ("other", "/ok/other", ALL_TYPES, OTHER_KEY),
        ]:
            response = subscribe(stack, receiver.url(path), types, key)
            assert response.status_code == 201, response.text
            self.created[name] = response.json()
        self.upload = upload_file(stack, SLICE)


@pytest.fixture(scope="module")
def world(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("webhooks")
    with (
        Receiver() as receiver,
        stack_of_its_own(
            kafka,
            work,
            "webhooks",
            services=(*SERVICES, WEBHOOKS),
            RETENTION_WEBHOOKS_ALLOWED_NETWORKS="127.0.0.1/32",
            RETENTION_WEBHOOKS_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
            RETENTION_WEBHOOKS_RETRY_BASE_SECONDS="0.2",
            RETENTION_WEBHOOKS_RETRY_MAX_SECONDS="1",
            # Drift on the first check of the first model: every event type happens.
            RETENTION_DRIFT_CHECK_MINUTES="0.05",
            RETENTION_DRIFT_PSI_THRESHOLD="0.000001",
        ) as stack,
    ):
        yield World(stack, receiver)


def _types(received: list) -> set[str]:
    return {json.loads(r.body)["type"] for r in received}


def test_every_event_type_arrives_signed_and_once_per_event(world: World) -> None:
    receiver, stack = world.receiver, world.stack
    wait_for(
        "a webhook of every type",
        lambda: _types(receiver.at("/ok/all")) == set(ALL_TYPES),
        timeout=300,
    )
    # What the topics hold for tenant default now: each must arrive, with the same data.
    expected = asyncio.run(_published(stack))
    assert {kind for kind, _ in expected.values()} == set(ALL_TYPES)
    wait_for(
        "every published event as a webhook",
        lambda: set(expected) <= {r.headers["webhook-id"] for r in receiver.at("/ok/all")},
        timeout=120,
    )
    time.sleep(2)  # room for a duplicate to show up

    received = receiver.at("/ok/all")
    ids = Counter(r.headers["webhook-id"] for r in received)
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:5]
    secret = world.created["all"]["secret"]
    wrong = new_secret()
    for request in received:
        headers, body = request.headers, request.body
        timestamp = int(headers["webhook-timestamp"])
        assert abs(timestamp - request.at) < 30
        assert headers["content-type"] == "application/json"
        assert verify(secret, headers["webhook-id"], timestamp, body, headers["webhook-signature"])
        assert not verify(
            wrong, headers["webhook-id"], timestamp, body, headers["webhook-signature"]
        )
        payload = json.loads(body)
        if headers["webhook-id"] in expected:
            kind, data = expected[headers["webhook-id"]]
            assert payload["type"] == kind
            assert payload["data"] == data
        assert payload["data"]["tenant_id"] == "default"
        assert payload["timestamp"].endswith("Z")

    (upload,) = [json.loads(r.body)["data"] for r in received if b"upload.completed" in r.body]
    assert upload["upload_id"] == world.upload["upload_id"]
    assert upload["rows_read"] == world.upload["progress"]["rows_read"]
    # Tenant other subscribed to everything, and nothing of default's reached it.
    assert receiver.at("/ok/other") == []


async def _published(stack: Stack) -> dict[str, tuple[str, dict]]:
    """webhook-id → (type, data) for every event of tenant default on the four topics."""
    topics = Topics.with_prefix(stack.settings.topic_prefix)
    found: dict[str, tuple[str, dict]] = {}
    sources = [
        (topics.customer_scores, "score.changed", CustomerScore),
        (topics.model_events, "model.published", ModelEvent),
        (topics.drift_events, "drift.detected", DriftDetected),
        (topics.upload_events, "upload.completed", UploadCompleted),
    ]
    for topic, kind, model in sources:
        for record in await read_to_end(stack.settings, topic):
            if record.value is None:
                continue
            event = decode_event(model, record.value)
            if kind == "model.published" and not isinstance(event, ModelPublished):
                continue
            if event.tenant_id != "default":
                continue
            own = getattr(event, "event_id", None)
            message_id = own or "msg_" + hashlib.sha256(record.value).hexdigest()[:32]
            found[message_id] = (kind, event.model_dump(mode="json"))
    return found


def test_a_failing_receiver_gets_the_event_on_the_fourth_try_with_the_same_id(
    world: World,
) -> None:
    receiver, stack = world.receiver, world.stack
    attempts = wait_for(
        "the flaky receiver's fourth attempt",
        lambda: (got := receiver.at("/flaky/upload")) and len(got) > FLAKY_FAILURES and got,
    )
    assert [a.status for a in attempts] == [500] * FLAKY_FAILURES + [204]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1  # the same bytes, signed anew each time
    secret = world.created["flaky"]["secret"]
    for attempt in attempts:
        h = attempt.headers
        assert verify(
            secret,
            h["webhook-id"],
            int(h["webhook-timestamp"]),
            attempt.body,
            h["webhook-signature"],
        )
    # Backoff: the retries were spread out, not sent at once.
    assert attempts[-1].at - attempts[0].at > 0.05

    (delivery,) = deliveries(stack, world.created["flaky"]["id"])
    assert delivery["state"] == "delivered"
    assert delivery["attempts"] == FLAKY_FAILURES + 1
    assert delivery["last_status"] == 204 and delivery["last_error"] is None
    assert delivery["message_id"] == attempts[0].headers["webhook-id"]
    assert delivery["type"] == "upload.completed"
    assert delivery["delivered_at"] is not None and delivery["next_attempt_at"] is None


def test_a_parked_delivery_is_redelivered_with_the_same_id(world: World) -> None:
    receiver, stack = world.receiver, world.stack
    webhook_id = world.created["down"]["id"]
    (parked,) = wait_for(
        "the delivery to a receiver that stays down to park",
        lambda: [d for d in deliveries(stack, webhook_id) if d["state"] == "parked"],
    )
    assert parked["attempts"] == MAX_ATTEMPTS
    assert parked["last_status"] == 500 and parked["last_error"] == "HTTP 500"
    assert parked["next_attempt_at"] is None
    assert len(receiver.at("/down/upload")) == MAX_ATTEMPTS
    redeliver = f"{hooks(stack)}/{webhook_id}/deliveries/{parked['id']}/redeliver"

    # Another tenant cannot; a read key cannot.
    assert httpx.post(redeliver, headers=auth(OTHER_KEY)).status_code == 404
    assert httpx.post(redeliver, headers=auth(READ_KEY)).status_code == 403

    receiver.up.set()
    response = httpx.post(redeliver, headers=auth())
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "pending"
    delivered = wait_for(
        "the redelivered delivery to arrive",
        lambda: [d for d in deliveries(stack, webhook_id) if d["state"] == "delivered"],
        timeout=30,
    )
    assert delivered[0]["attempts"] == MAX_ATTEMPTS + 1
    sent = receiver.at("/down/upload")
    assert [s.status for s in sent] == [500] * MAX_ATTEMPTS + [204]
    assert {s.headers["webhook-id"] for s in sent} == {parked["message_id"]}

    # Only a parked delivery can be redelivered.
    again = httpx.post(redeliver, headers=auth())
    assert again.status_code == 409
    assert fields_of(again) == ["path.delivery_id"]
    missing = httpx.post(
        f"{hooks(stack)}/{webhook_id}/deliveries/dlv_nope/redeliver", headers=auth()
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://127.0.0.2:8080/hook",  # loopback outside the allowed 127.0.0.1/32
        "http://0.0.0.0/hook",
        "http://[fe80::1]/hook",
        "ftp://example.com/hook",
        "not a url",
        "https://user:secret@example.com/hook",
    ],
)
def test_internal_or_malformed_targets_are_refused_with_422(world: World, target: str) -> None:
    before = httpx.get(hooks(world.stack), headers=auth()).json()["webhooks"]
    response = subscribe(world.stack, target, ["score.changed"])
    assert response.status_code == 422, response.text
    assert fields_of(response) == ["body.url"]
    assert httpx.get(hooks(world.stack), headers=auth()).json()["webhooks"] == before


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://example.com/hook", "event_types": []},
        {"url": "https://example.com/hook", "event_types": ["score.deleted"]},
        {"url": "https://example.com/hook", "event_types": ["score.changed", "score.changed"]},
        {"url": "https://example.com/hook"},
    ],
)
def test_bad_event_types_are_422_naming_the_field(world: World, body: dict) -> None:
    response = httpx.post(hooks(world.stack), json=body, headers=auth())
    assert response.status_code == 422, response.text
    assert all("event_types" in field for field in fields_of(response)), fields_of(response)


def test_the_secret_is_shown_once_and_tenants_never_meet(world: World) -> None:
    stack = world.stack
    created = world.created["all"]
    assert created["secret"].startswith("whsec_")
    one = httpx.get(f"{hooks(stack)}/{created['id']}", headers=auth())
    listed = httpx.get(hooks(stack), headers=auth())
    assert one.status_code == listed.status_code == 200
    assert "secret" not in one.json()
    assert created["secret"] not in one.text and created["secret"] not in listed.text
    assert {w["id"] for w in listed.json()["webhooks"]} == {
        world.created[name]["id"] for name in ("all", "flaky", "down")
    }
    assert one.json() == {k: v for k, v in created.items() if k != "secret"}

    theirs = world.created["other"]["id"]
    other_list = httpx.get(hooks(stack), headers=auth(OTHER_KEY)).json()["webhooks"]
    assert [w["id"] for w in other_list] == [theirs]
    for method, path in [
        ("GET", f"/{created['id']}"),
        ("GET", f"/{created['id']}/deliveries"),
        ("DELETE", f"/{created['id']}"),
    ]:
        response = httpx.request(method, hooks(stack) + path, headers=auth(OTHER_KEY))
        assert response.status_code == 404, (method, path, response.text)
        assert fields_of(response) == ["path.webhook_id"]
    assert httpx.get(f"{hooks(stack)}/{created['id']}", headers=auth()).status_code == 200
    assert httpx.get(hooks(stack), headers=auth(READ_KEY)).status_code == 403
    assert httpx.get(hooks(stack)).status_code == 401

    # Its owner can delete it; then it is gone.
    extra = subscribe(stack, world.receiver.url("/ok/extra"), ["drift.detected"]).json()
    assert httpx.delete(f"{hooks(stack)}/{extra['id']}", headers=auth()).status_code == 204
    assert httpx.get(f"{hooks(stack)}/{extra['id']}", headers=auth()).status_code == 404
    assert httpx.delete(f"{hooks(stack)}/{extra['id']}", headers=auth()).status_code == 404


def test_the_delivery_log_pages_newest_first(world: World) -> None:
    stack, webhook_id = world.stack, world.created["all"]["id"]
    seen: list[dict] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(
            f"{hooks(stack)}/{webhook_id}/deliveries", params=params, headers=auth()
        ).json()
        seen += page["deliveries"]
        cursor = page["next_cursor"]
        if cursor is None or len(seen) > 2000:
            break
    assert len(seen) == len({d["id"] for d in seen}) >= len(world.receiver.at("/ok/all"))
    created = [d["created_at"] for d in seen]
    assert created == sorted(created, reverse=True)
    assert {d["state"] for d in seen} == {"delivered"}
    bad = httpx.get(
        f"{hooks(stack)}/{webhook_id}/deliveries", params={"cursor": "x"}, headers=auth()
    )
    assert bad.status_code == 422 and fields_of(bad) == ["query.cursor"]


def test_metrics_and_readiness(world: World) -> None:
    base = url(world.stack, "webhooks")
    assert httpx.get(f"{base}/readyz").status_code == 200
    exposition = wait_for(
        "an attempt of each outcome",
        lambda: 'outcome="parked"' in (text := httpx.get(f"{base}/metrics").text) and text,
    )
    for outcome in ("delivered", "failed", "parked"):
        assert f'outcome="{outcome}"' in exposition, outcome
    assert 'retention_webhooks_deliveries{state="delivered"}' in exposition
    assert "retention_webhooks_attempt_duration_seconds_bucket" in exposition


def test_an_erased_customer_leaves_the_delivery_log(world: World) -> None:
    stack, webhook_id = world.stack, world.created["all"]["id"]
    wait_for(
        "a score.changed delivered",
        lambda: any(d["type"] == "score.changed" for d in deliveries(stack, webhook_id)),
        timeout=300,
    )
    scored = [
        json.loads(r.body)["data"]
        for r in world.receiver.at("/ok/all")
        if b"score.changed" in r.body
    ]
    customer = scored[0]["customer_id"]
    theirs = {
        r.headers["webhook-id"]
        for r in world.receiver.at("/ok/all")
        if json.loads(r.body)["data"].get("customer_id") == customer
    }
    logged = {d["message_id"] for d in deliveries(stack, webhook_id)}
    assert theirs <= logged
    response = httpx.delete(f"{url(stack, 'scoring')}/v1/customers/{customer}", headers=auth())
    assert response.status_code == 202, response.text
    erasure_id = response.json()["erasure_id"]

    def confirmed(records: list) -> list[CustomerErased]:
        events = (decode_event(CustomerErased, r.value) for r in records)
        return [e for e in events if e.erasure_id == erasure_id and e.service == "webhooks"]

    topic = Topics.with_prefix(stack.settings.topic_prefix).erasure_audit
    records = asyncio.run(read_until(stack.settings, topic, lambda got: bool(confirmed(got)), 60))
    (confirmation,) = confirmed(records)
    assert confirmation.removed["messages"] == len(theirs) >= 1
    assert customer not in json.dumps(confirmation.model_dump(mode="json"))
    assert not theirs & {d["message_id"] for d in deliveries(stack, webhook_id)}
