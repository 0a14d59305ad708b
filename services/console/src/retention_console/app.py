"""The console service: FastAPI serving server-rendered pages (Jinja2 + htmx, ECharts charts).

It is a backend-for-frontend: no broker, no data of its own; each page asks the services' APIs
with the signed-in user's key and renders their answers. This module only wires: the pages are
`pages/`, what every response goes through `middleware.py`, failures as pages `errors.py`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from retention_console import errors, telemetry
from retention_console.lifespan import lifespan
from retention_console.middleware import FORM_BYTES, session_and_headers
from retention_console.pages.routers import ROUTERS
from retention_console.services import Services
from retention_console.sessions import SessionStore
from retention_console.staging import StagedFiles
from retention_shared.config import Settings
from retention_shared.limits import BodySizeLimit

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    secret = settings.console_session_secret.get_secret_value() or secrets.token_urlsafe(32)
    services = services or Services(settings)
    # Files sent on the Data page, kept between their preview and their import.
    staged_files = StagedFiles(settings.max_upload_bytes)
    app = FastAPI(
        title="Retention console",
        lifespan=lifespan(staged_files, services),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.sessions = SessionStore(secret, settings.console_session_minutes * 60)
    app.state.services = services
    app.state.staged_files = staged_files
    app.add_middleware(BodySizeLimit, limits={"/": FORM_BYTES, "/data/": settings.max_upload_bytes})
    telemetry.instrument(app)
    app.middleware("http")(session_and_headers)
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
