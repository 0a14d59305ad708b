"""How a sharded replica gathers a tenant-wide answer (`api/routing.gather`), without a broker:
the other replicas are fakes behind the forwarding client's transport, so when each was asked,
answered or cancelled can be observed. The merges themselves are `test_gathered.py`; the real
replicas on the real broker are `service/test_sharding.py`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import httpx
from fastapi import FastAPI, Request

from retention_scoring.api.routing import FORWARDED_BY, PARTITIONS, add_routing, gather
from retention_scoring.shards import Membership
from retention_scoring.state import ScoringState, Sharding
from retention_shared.events import ScoringReplica
from retention_shared.http_errors import install_problem_handlers

# Long enough never to pass on a working machine: only a gather that asks one replica after
# the other waits it out (and then fails on the order of events, not on the time).
NEVER = 30.0


def _sharding() -> Sharding:
    """ "me" owns partitions 0-1 and is asked; "a" owns 2-3, "b" owns 4-5."""
    membership = Membership()
    for name, partitions in (("me", [0, 1]), ("a", [2, 3]), ("b", [4, 5])):
        membership.apply(
            name,
            ScoringReplica(
                replica_id=name,
                url=f"http://{name}:8000",
                partitions=dict.fromkeys(partitions, 1),
                clocks={},
                announced_at=datetime.now(UTC),
            ),
        )
    return Sharding(
        replica_id="me",
        membership=membership,
        held=lambda: {0: 1, 1: 1},
        partition_count=lambda: 6,
    )


Answer = Callable[["FakeReplicas"], Awaitable[httpx.Response]]


class FakeReplicas:
    """The other replicas: each records being asked, then answers as `answers` says (which may
    wait for the others), and records answering or being cancelled."""

    def __init__(self, answers: dict[str, Answer]) -> None:
        self.answers = answers
        self.events: list[tuple[str, str]] = []
        self.partitions: dict[str, str] = {}
        self.all_asked = asyncio.Event()
        self.answered: dict[str, asyncio.Event] = {name: asyncio.Event() for name in answers}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host
        assert request.headers[FORWARDED_BY] == "me"
        self.partitions[name] = request.headers[PARTITIONS]
        self.events.append(("asked", name))
        if len(self.partitions) == len(self.answers):
            self.all_asked.set()
        try:
            response = await self.answers[name](self)
        except asyncio.CancelledError:
            self.events.append(("cancelled", name))
            raise
        self.events.append(("answered", name))
        self.answered[name].set()
        return response

    async def after_all_asked(self) -> None:
        await asyncio.wait_for(self.all_asked.wait(), NEVER)


def _gatherer(replicas: FakeReplicas) -> FastAPI:
    """A sharded replica's app (problem handlers, routing) whose one route gathers."""
    app = FastAPI()
    install_problem_handlers(app)
    add_routing(app, "me", timeout=NEVER)
    app.state.replica_client = httpx.AsyncClient(transport=httpx.MockTransport(replicas.handle))
    state = cast(ScoringState, SimpleNamespace(sharding=_sharding()))

    @app.get("/v1/customers")
    async def gathered(request: Request) -> dict[str, Any]:
        mine, others = await gather(request, state)
        return {"mine": sorted(mine or []), "others": [answer.json() for answer in others]}

    return app


async def _ask(replicas: FakeReplicas) -> httpx.Response:
    app = _gatherer(replicas)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://me:8000") as client:
        response = await client.get("/v1/customers", params={"limit": "5"})
    await app.state.replica_client.aclose()
    return response


def _no_task_left_running() -> bool:
    return {t for t in asyncio.all_tasks() if not t.done()} == {asyncio.current_task()}


async def test_every_replica_is_asked_before_any_answers_and_answers_keep_the_plans_order() -> None:
    async def a(replicas: FakeReplicas) -> httpx.Response:
        await replicas.after_all_asked()
        await asyncio.wait_for(replicas.answered["b"].wait(), NEVER)  # b answers first
        return httpx.Response(200, json={"from": "a"})

    async def b(replicas: FakeReplicas) -> httpx.Response:
        await replicas.after_all_asked()
        return httpx.Response(200, json={"from": "b"})

    replicas = FakeReplicas({"a": a, "b": b})
    response = await _ask(replicas)

    assert response.status_code == 200, response.text
    # Both in flight at once: a gather takes the slowest replica's time, not the sum.
    assert sorted(replicas.events[:2]) == [("asked", "a"), ("asked", "b")]
    assert replicas.events[2:] == [("answered", "b"), ("answered", "a")]
    # Each asked for exactly its own partitions; the answers in the plan's order.
    assert replicas.partitions == {"a": "2,3", "b": "4,5"}
    assert response.json() == {"mine": [0, 1], "others": [{"from": "a"}, {"from": "b"}]}
    assert _no_task_left_running()


async def _answers_too_late(replicas: FakeReplicas) -> httpx.Response:
    await asyncio.sleep(NEVER)
    return httpx.Response(200, json={"late": True})


async def test_a_replica_that_does_not_answer_is_a_503_and_the_other_request_is_cancelled() -> None:
    async def times_out(replicas: FakeReplicas) -> httpx.Response:
        await replicas.after_all_asked()
        raise httpx.ReadTimeout("no answer within the forwarding time limit")

    replicas = FakeReplicas({"a": times_out, "b": _answers_too_late})
    response = await _ask(replicas)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert "scoring replica a did not answer" in response.text
    assert sorted(replicas.events) == [("asked", "a"), ("asked", "b"), ("cancelled", "b")]
    assert _no_task_left_running()


async def test_a_replicas_own_problem_is_passed_on_and_the_other_request_is_cancelled() -> None:
    problem = {"title": "Service Unavailable", "status": 503, "detail": "champion loading"}

    async def not_ready(replicas: FakeReplicas) -> httpx.Response:
        await replicas.after_all_asked()
        headers = {"content-type": "application/problem+json", "retry-after": "5"}
        return httpx.Response(503, json=problem, headers=headers)

    replicas = FakeReplicas({"a": _answers_too_late, "b": not_ready})
    response = await _ask(replicas)

    assert response.status_code == 503
    assert response.json() == problem
    assert response.headers["retry-after"] == "5"
    assert ("cancelled", "a") in replicas.events
    assert ("answered", "a") not in replicas.events
    assert _no_task_left_running()
