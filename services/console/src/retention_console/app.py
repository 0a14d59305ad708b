"""The console service: FastAPI serving server-rendered pages (Jinja2 + htmx, ECharts charts).

It is a backend-for-frontend: no broker, no data of its own; each page asks the services' APIs
with the signed-in user's key and renders their answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from retention_console import errors
from retention_console.pages import (
    campaigns,
    cohorts,
    customers,
    data,
    models,
    overview,
    segments,
    signin,
)
from retention_console.services import Services
from retention_console.sessions import SESSION_COOKIE, SessionStore
from retention_console.staging import StagedFiles
from retention_shared.config import Settings
from retention_shared.limits import BodySizeLimit
from retention_shared.metrics import HttpMetricsMiddleware, metrics_response
from retention_shared.problems import PROBLEM_MEDIA_TYPE

STATIC = Path(__file__).parent / "static"
# Everything the pages load is served from here: no CDN, so the console works offline, and no
# inline script, so a value that slipped past escaping still cannot run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)
# A sign-in or page form is small; only the upload form carries a file.
FORM_BYTES = 1024 * 1024


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    secret = settings.console_session_secret.get_secret_value() or secrets.token_urlsafe(32)
    sessions = SessionStore(secret, settings.console_session_minutes * 60)
    services = services or Services(settings)
    # Files sent on the Data page, kept between their preview and their import.
    staged_files = StagedFiles(settings.max_upload_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_every_minute(staged_files))
        yield
        sweeper.cancel()
        staged_files.close()
        await services.close()

    app = FastAPI(
        title="Retention console",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.services = services
    app.state.staged_files = staged_files
    app.add_middleware(BodySizeLimit, limits={"/": FORM_BYTES, "/data/": settings.max_upload_bytes})
    app.add_middleware(HttpMetricsMiddleware, service="console")

    @app.middleware("http")
    async def session_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.session = sessions.find(request.cookies.get(SESSION_COOKIE))
        response = await call_next(request)
        if (
            response.status_code == 413
            and response.headers.get("content-type") == PROBLEM_MEDIA_TYPE
        ):
            # The body size limit answered before any page could: a readable page instead.
            response = errors.too_large(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            # Pages show one tenant's customers: never from a shared cache.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "console"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, object]:
        # Ready whatever the services do: a console that stays up is what tells users which
        # service is down.
        return {"ready": True, "service": "console", "checks": {}}

    app.add_api_route("/metrics", metrics_response, methods=["GET"], include_in_schema=False)
    for module in (signin, overview, segments, customers, cohorts, campaigns, data, models):
        app.include_router(module.router)
    app.add_exception_handler(StarletteHTTPException, errors.http_error)
    return app


async def _sweep_every_minute(staged_files: StagedFiles) -> None:
    while True:
        await asyncio.sleep(60)
        await asyncio.to_thread(staged_files.sweep)
