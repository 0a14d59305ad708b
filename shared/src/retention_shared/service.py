"""What every service process shares: the FastAPI app shell, broker lifecycle, and `run_service`.

A service supplies its routers, its FastStream subscribers (registered on `ServiceContext.broker`)
and optional hooks; this module adds auth, `/healthz`, `/readyz`, `/metrics`, request metrics, a
uniform 422 shape, and a broker connection that is retried until the broker answers.
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
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from retention_shared.auth import AnyCaller, ApiKeys, AuthConfigError, Role
from retention_shared.config import Settings, load_settings
from retention_shared.health import CachedCheck, CheckResult, Readiness
from retention_shared.kafka import broker_answers, make_broker
from retention_shared.limits import BodySizeLimit
from retention_shared.logs import configure_logging
from retention_shared.metrics import HttpMetricsMiddleware, metrics_response, use_tenant_labels
from retention_shared.problems import add_problem_schemas
from retention_shared.tasks import cancel
from retention_shared.topics import Topics

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

    @classmethod
    def create(cls, name: str, settings: Settings) -> ServiceContext:
        use_tenant_labels(settings.metrics_tenant_labels)
        return cls(
            name=name,
            settings=settings,
            broker=make_broker(settings, client_id=f"retention-{name}"),
            topics=Topics.with_prefix(settings.topic_prefix),
        )


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
        try:
            yield
        finally:
            await cancel([connecting])
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
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "service": ctx.name, "broker_connected": ctx.connected.is_set()}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        ready, checks = await ctx.readiness.evaluate()
        return JSONResponse(
            {"ready": ready, "service": ctx.name, "checks": checks},
            status_code=200 if ready else 503,
        )

    app.add_api_route("/metrics", metrics_response, methods=["GET"], tags=["ops"])
    app.add_api_route("/v1/whoami", whoami, methods=["GET"], tags=["ops"])
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

    tenant_id: str
    roles: list[Role]


async def whoami(caller: AnyCaller) -> WhoAmI:
    """`GET /v1/whoami`: which tenant and roles the sent API key has, in every service."""
    return WhoAmI(tenant_id=caller.tenant_id, roles=sorted(caller.roles))


async def _connect(ctx: ServiceContext, on_connected: Sequence[Hook]) -> None:
    """Start the broker, retrying with backoff until it answers; then run the service's hooks."""
    delay = 0.2
    while True:
        try:
            await broker_answers(ctx.settings)
            await ctx.broker.start()
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


async def _broker_check(ctx: ServiceContext) -> CheckResult:
    if not ctx.connected.is_set():
        return False, "connecting to the broker"
    if await ctx.broker.ping(timeout=1.0):
        return True, "connected"
    return False, "broker does not answer"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_validation_problem(error) for error in exc.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


def _validation_problem(error: dict) -> dict[str, str]:
    if error["type"] == "json_invalid":
        # Its location is a character position, not a field: the body is what is wrong.
        position = error["loc"][-1]
        reason = (error.get("ctx") or {}).get("error", "")
        return {"field": "body", "problem": f"not JSON: {reason} at character {position}"}
    return {
        "field": ".".join(str(part) for part in error["loc"] if part != "body") or "body",
        "problem": error["msg"],
    }


# What a framework answer with only a sentence (unmatched route, unparseable body) is about.
_FIELD_OF_STATUS = {400: "body", 404: "path", 405: "method", 413: "body", 415: "body"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Every 4xx names a field: FastAPI's and Starlette's own answers carry only a sentence
    ("There was an error parsing the body" for a body that is not UTF-8 or nested too deeply to
    parse, "Not Found" for a path no route matches); the routes' own details pass unchanged."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, str) and exc.status_code in _FIELD_OF_STATUS:
        problem = detail
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            problem = f"the body is not UTF-8 ({cause.reason} at byte {cause.start})"
        elif isinstance(cause, RecursionError):
            problem = "the body is nested too deeply to parse"
        detail = {"field": _FIELD_OF_STATUS[exc.status_code], "problem": problem}
    return await http_exception_handler(
        request, StarletteHTTPException(exc.status_code, detail, exc.headers)
    )


def run_service(name: str, create_app: Callable[[Settings], FastAPI]) -> None:
    """Entry point of `python -m retention_<name>`: settings from the environment, then uvicorn."""
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
