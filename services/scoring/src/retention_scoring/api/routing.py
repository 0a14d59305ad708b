"""Sharded scoring over HTTP: a customer's request answered by the replica that holds them, and
tenant-wide lists gathered from every replica (docs/scoring.md, "Sharding").

Any replica takes any request (a k8s Service in front of them): a per-customer route at a
replica that does not own the customer's partition is forwarded to the owner with the caller's
own key, once (`X-Retention-Forwarded-By` marks it, and a forwarded request is answered where
it lands). Every answer of a sharded replica names who answered in `X-Retention-Served-By`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
import numpy as np
import polars as pl
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retention_scoring.api.deps import replica_client
from retention_scoring.errors import unavailable
from retention_scoring.shards import Forward, Local
from retention_scoring.state import ScoringState, Sharding

__all__ = [
    "FORWARDED_BY",
    "MAX_ASKED_AT_ONCE",
    "PARTITIONS",
    "SERVED_BY",
    "Forwarded",
    "Shares",
    "add_routing",
    "forward",
    "gather",
    "owner_serves",
    "response_of",
    "share_of",
    "share_rows",
    "shares",
]

log = logging.getLogger(__name__)
# httpx logs every request at INFO: one line per forwarded request is noise (and costs).
logging.getLogger("httpx").setLevel(logging.WARNING)

SERVED_BY = "X-Retention-Served-By"
FORWARDED_BY = "X-Retention-Forwarded-By"
# A gathered request: the partitions the asked replica answers for (the others' are elsewhere).
PARTITIONS = "X-Retention-Partitions"
# Request headers a forwarded request carries on (the key and what the caller asked for).
_PASSED_ON = ("authorization", "accept", "content-type")
# Response headers that describe the transport, not the answer.
_DROPPED = {
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "date",
    "server",
}


class Forwarded(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def forward(
    request: Request,
    sharding: Sharding,
    url: str,
    json_only: bool = False,
    content: bytes | str | None = None,
    **headers: str,
) -> httpx.Response:
    client = replica_client(request)
    passed = {name: value for name in _PASSED_ON if (value := request.headers.get(name))}
    params = list(request.query_params.multi_items())
    if json_only:  # a gathered share: JSON, merged here into what the caller asked for
        params = [(k, v) for k, v in params if k != "format"] + [("format", "json")]
        passed["accept"] = "application/json"
    return await client.request(
        request.method,
        f"{url.rstrip('/')}{request.url.path}",
        params=params,
        content=await request.body() if content is None else content,
        headers={**passed, FORWARDED_BY: sharding.replica_id, **headers},
    )


def response_of(answer: httpx.Response) -> Response:
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in _DROPPED}
    return Response(answer.content, status_code=answer.status_code, headers=headers)


async def _route_customer(
    customer_id: str, tenant_id: str, request: Request, state: ScoringState
) -> None:
    """Answer here (return), or raise `Forwarded` with the owner's answer; 503 while nobody
    serves the customer's partition yet."""
    sharding = state.sharding
    if sharding is None or FORWARDED_BY in request.headers:
        return
    partition = sharding.partition_of(tenant_id, customer_id)
    route = sharding.membership.route(partition, sharding.replica_id)
    if isinstance(route, Local):
        return
    if isinstance(route, Forward):
        try:
            raise Forwarded(response_of(await forward(request, sharding, route.url)))
        except httpx.HTTPError as exc:
            log.warning(
                "forwarding to the owner failed",
                extra={"replica": route.replica_id, "detail": repr(exc)},
            )
    if partition in sharding.held():  # the owner is unreachable or not known: what is held
        return
    raise unavailable(f"no scoring replica serves this customer's partition ({partition}) yet")


async def owner_serves(
    customer_id: str, caller_tenant: str, request: Request, state: ScoringState
) -> None:
    """`serve_here_or_forward` called from the route body: one attribute test when unsharded,
    no dependency for FastAPI to resolve on the single-replica hot path."""
    if state.sharding is not None:
        await _route_customer(customer_id, caller_tenant, request, state)


def share_of(request: Request, state: ScoringState) -> frozenset[int] | None:
    """The partitions a gathered request asks this replica for (None: not a gathered one)."""
    value = request.headers.get(PARTITIONS)
    if state.sharding is None or value is None or FORWARDED_BY not in request.headers:
        return None
    return frozenset(int(part) for part in value.split(",") if part.strip().isdigit())


# At most this many replicas asked at once by one gathered request. Replicas are few (at most
# one per partition, typically 2-6), so in practice each is asked at once and a gathered answer
# takes the slowest replica's time, not the sum; the bound keeps one gather over many replicas
# from taking more than a share of the forwarding client's pool (httpx: 100 connections for
# every request in flight), where requests would queue for a connection and time out as 503s.
MAX_ASKED_AT_ONCE = 8


async def gather(
    request: Request, state: ScoringState
) -> tuple[frozenset[int] | None, list[httpx.Response]]:
    """Ask every other replica at once for its share of a tenant-wide answer (JSON); returns
    the partitions this replica answers for itself and the others' answers, in the plan's
    order (the merges do not depend on who answered first). 503 while a partition has no
    replica or a replica does not answer; the first failure cancels the requests in flight."""
    sharding = state.sharding
    assert sharding is not None
    shares, missing = sharding.membership.plan(range(sharding.partition_count()))
    if missing:
        raise unavailable(f"no scoring replica serves partitions {missing} yet")
    mine = frozenset(shares.pop(sharding.replica_id, []))
    body = await request.body()  # read once: every share is asked with the caller's body
    asking = asyncio.Semaphore(MAX_ASKED_AT_ONCE)

    async def ask(replica_id: str, partitions: list[int]) -> httpx.Response:
        url = sharding.membership.url(replica_id)
        assert url is not None
        async with asking:
            try:
                answer = await forward(
                    request,
                    sharding,
                    url,
                    json_only=True,
                    content=body,
                    **{PARTITIONS: ",".join(map(str, partitions))},
                )
            except httpx.HTTPError as exc:
                raise unavailable(f"scoring replica {replica_id} did not answer: {exc!r}") from None
        if answer.status_code != 200:
            raise Forwarded(response_of(answer))
        return answer

    try:
        async with asyncio.TaskGroup() as group:
            asked = [group.create_task(ask(*share)) for share in shares.items()]
    except BaseExceptionGroup as failed:
        # The first failure (a 503, or a replica's own problem passed on) cancelled the rest.
        raise failed.exceptions[0] from None
    return mine, [task.result() for task in asked]


@dataclass(frozen=True)
class Shares:
    """How a replica answers a tenant-wide request."""

    mine: frozenset[int] | None  # the partitions it answers for (None: every row it holds)
    others: list[httpx.Response]  # the other replicas' shares, to merge with its own
    wanted: bool  # a gatherer asked for this replica's share only (it merges it)


async def shares(request: Request, state: ScoringState) -> Shares:
    """For a tenant-wide answer: unsharded, everything here; a share another replica gathers;
    or, when a client asked a sharded replica, its own share and every other replica's
    (`gather`: 503 while one does not answer, never a partial answer)."""
    share = share_of(request, state)
    if share is not None:
        return Shares(share, [], wanted=True)
    if state.sharding is not None:
        mine, others = await gather(request, state)
        return Shares(mine, others, wanted=False)
    return Shares(None, [], wanted=False)


def share_rows(partitions: np.ndarray, share: frozenset[int] | None) -> pl.Series | None:
    """The mask of a population's rows in `share` (None: every row, nothing to filter)."""
    if share is None:
        return None
    return pl.Series(np.isin(partitions, list(share)))


def add_routing(app: FastAPI, replica_id: str, timeout: float) -> None:
    """The forwarding client, the `Forwarded` answer and the served-by header (sharded only)."""
    app.state.replica_client = httpx.AsyncClient(timeout=timeout)

    async def forwarded(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Forwarded)
        return exc.response

    app.add_exception_handler(Forwarded, forwarded)

    app.add_middleware(ServedBy, replica_id=replica_id)


class ServedBy:
    """Names the replica that answered (unless a forwarded answer already names its owner);
    plain ASGI, so it costs next to nothing per request."""

    def __init__(self, app: ASGIApp, replica_id: str) -> None:
        self.app = app
        self.header = (SERVED_BY.lower().encode(), replica_id.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name == self.header[0] for name, _ in headers):
                    headers.append(self.header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, named)
