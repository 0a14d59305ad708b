"""What every service process shares: the FastAPI app shell, broker lifecycle, and `run_service`.

A service supplies its routers, its FastStream subscribers (registered on `ServiceContext.broker`)
and optional hooks; this module adds auth, `/healthz`, `/readyz`, `/metrics`, request metrics,
RFC 9457 problem+json for every error (`retention_shared.http_errors`), and a broker connection
that is retried until the broker answers (the subscribers' group joins do not hold up
readiness: `_connect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ConfigDict

from retention_shared.auth import AnyCaller, ApiKeys, AuthConfigError, Role
from retention_shared.config import Settings, load_settings
from retention_shared.health import CachedCheck, CheckResult, Readiness
from retention_shared.http_errors import install_problem_handlers
from retention_shared.kafka.clients import broker_answers, make_broker
from retention_shared.kafka.message_counts import MessageCounts
from retention_shared.limits import BodySizeLimit
from retention_shared.logs import configure_logging
from retention_shared.memory import limit_arenas, release_memory
from retention_shared.metrics import HttpMetricsMiddleware, metrics_response, use_tenant_labels
from retention_shared.problems import (
    FieldProblem,
    add_problem_schemas,
    problem_response,
    problem_responses,
)
from retention_shared.tasks import cancel
from retention_shared.topics import Topics, declared_for

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass
class ServiceContext:
    """Everything a service's handlers and routes need, built once per process."""

    name: str
    settings: Settings
    broker: KafkaBroker
    topics: Topics
    readiness: Readiness = field(default_factory=Readiness)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the FastStream subscribers joined their groups (after `connected`, not needed
    # for it: see `_connect`).
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    # The declared topics (names without prefix) this process publishes to and consumes, as the
    # Kafka kit (`retention_shared.kafka`) resolved them: tests compare them with `TOPICS`.
    published: set[str] = field(default_factory=set)
    consumed: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, name: str, settings: Settings) -> ServiceContext:
        use_tenant_labels(settings.metrics_tenant_labels)
        return cls(
            name=name,
            settings=settings,
            broker=make_broker(settings, client_id=f"retention-{name}"),
            topics=Topics.with_prefix(settings.topic_prefix),
        )

    @property
    def counts(self) -> MessageCounts:
        return MessageCounts(self.name)

    def topic_to_publish(self, name: str) -> str:
        """The prefixed name of declared topic `name`, which this service must be declared to
        publish to (`UndeclaredTopic` otherwise)."""
        declaration = declared_for(self.name, name, "producer")
        self.published.add(name)
        return str(getattr(self.topics, declaration.attr))

    def topic_to_consume(self, name: str) -> str:
        """The prefixed name of declared topic `name`, which this service must be declared to
        consume (`UndeclaredTopic` otherwise)."""
        declaration = declared_for(self.name, name, "consumer")
        self.consumed.add(name)
        return str(getattr(self.topics, declaration.attr))


def create_service_app(
    ctx: ServiceContext,
    *,
    description: str,
    routers: Sequence[APIRouter] = (),
    on_connected: Sequence[Hook] = (),
    on_stopping: Sequence[Hook] = (),
    body_limits: dict[str, int] | None = None,
) -> FastAPI:
    """The service's FastAPI app. Refuses (AuthConfigError) when no API keys are configured."""
    api_keys = ApiKeys.from_settings(ctx.settings)
    ctx.readiness.add("broker", CachedCheck(lambda: _broker_check(ctx)))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connecting = asyncio.create_task(_connect(ctx, on_connected))
        releasing = asyncio.create_task(release_memory())
        try:
            yield
        finally:
            await cancel([connecting, releasing])
            for hook in on_stopping:
                await hook()
            await ctx.broker.stop()

    app = FastAPI(title=f"Retention {ctx.name}", description=description, lifespan=lifespan)
    app.state.api_keys = api_keys
    app.state.ctx = ctx
    app.add_middleware(
        BodySizeLimit, limits={"/": ctx.settings.max_request_bytes, **(body_limits or {})}
    )
    app.add_middleware(HttpMetricsMiddleware, service=ctx.name)
    install_problem_handlers(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "service": ctx.name,
            "broker_connected": ctx.connected.is_set(),
            "subscribed": ctx.subscribed.is_set(),
        }

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        ready, checks = await ctx.readiness.evaluate()
        report = {"ready": ready, "service": ctx.name, "checks": checks}
        if ready:
            return JSONResponse(report)
        # A 503 like any other: a problem naming each failing check; the report stays in it.
        failing = [
            FieldProblem(field=f"checks.{name}", problem=str(check["detail"]))
            for name, check in checks.items()
            if not check["ok"]
        ]
        return problem_response(503, failing, extensions=report)

    app.add_api_route("/metrics", metrics_response, methods=["GET"], tags=["ops"])
    app.add_api_route(
        "/v1/whoami", whoami, methods=["GET"], tags=["ops"], responses=problem_responses(401)
    )
    for router in routers:
        app.include_router(router)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """The routes' error responses refer to `Problem` by name: put it in the components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_problem_schemas(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class WhoAmI(BaseModel):
    """The tenant and roles of the key a request sent: how the console learns what to show."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tenant_id": "default", "roles": ["read"]}]}
    )

    tenant_id: str
    roles: list[Role]


async def whoami(caller: AnyCaller) -> WhoAmI:
    """`GET /v1/whoami`: which tenant and roles the sent API key has, in every service."""
    return WhoAmI(tenant_id=caller.tenant_id, roles=sorted(caller.roles))


async def _connect(ctx: ServiceContext, on_connected: Sequence[Hook]) -> None:
    """Connect to the broker, retrying with backoff until it answers; run the service's hooks;
    then start the FastStream subscribers.

    The subscribers come last and do not hold up `connected` (so readiness): starting one joins
    its consumer group, and aiokafka's `start` waits for the group's assignment. On the embedded
    broker a join after the group's members stopped was seen never to finish (it kept electing
    a departed member the leader: docs/architecture.md). No service needs a subscription to
    serve its API (a record published before the join is read after it: the groups start at
    the earliest offset)."""
    delay = 0.2
    while True:
        try:
            await broker_answers(ctx.settings)
            await ctx.broker.connect()
            break
        except Exception as exc:  # the broker may not be up yet: keep serving /healthz and retry
            log.warning(
                "broker not reachable, retrying", extra={"error": str(exc), "retry_in": delay}
            )
            with contextlib.suppress(Exception):
                await ctx.broker.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    log.info("connected to broker", extra={"bootstrap": ctx.settings.kafka_bootstrap})
    for hook in on_connected:
        await hook()
    ctx.connected.set()
    await _subscribe(ctx)


async def _subscribe(ctx: ServiceContext) -> None:
    """Start the subscribers (each joins its group) side by side, so a join that hangs (see
    `_connect`) holds up only its own subscription, never e.g. ingest's `orders.raw`."""
    await asyncio.gather(*(_start_subscriber(s) for s in ctx.broker.subscribers))
    # What `KafkaBroker.start` does after its subscribers (it would start them again).
    for publisher in ctx.broker.publishers:
        await publisher.start()
    ctx.broker.running = True
    ctx.subscribed.set()
    log.info("subscribed", extra={"subscribers": len(ctx.broker.subscribers)})


async def _start_subscriber(subscription: Any) -> None:
    """Start one subscriber, retried with backoff until it has joined its group."""
    delay = 0.2
    while True:
        try:
            await subscription.start()
            return
        except Exception as exc:
            log.warning(
                "subscribing failed, retrying", extra={"error": str(exc), "retry_in": delay}
            )
            with contextlib.suppress(Exception):
                await subscription.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _broker_check(ctx: ServiceContext) -> CheckResult:
    if not ctx.connected.is_set():
        return False, "connecting to the broker"
    if await ctx.broker.ping(timeout=1.0):
        return True, "connected"
    return False, "broker does not answer"


def run_service(name: str, create_app: Callable[[Settings], FastAPI]) -> None:
    """Entry point of `python -m retention_<name>`: settings from the environment, then uvicorn."""
    limit_arenas()  # before any thread allocates (uvicorn, aiokafka, worker threads)
    settings = load_settings()
    configure_logging(name, settings.log_level, settings.log_json)
    try:
        app = create_app(settings)
    except AuthConfigError as exc:
        log.error("refusing to start: %s", exc)
        sys.exit(2)
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=settings.port_of(name),
        log_config=None,
        access_log=False,
    )
