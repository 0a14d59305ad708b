"""Templates and the values every page gets (who is signed in, what they may do, CSRF token)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from retention_console.sessions import Session
from retention_shared.auth import Role

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

NAV = (
    ("overview", "/", "Overview"),
    ("segments", "/segments", "Segments"),
    ("customers", "/customers", "Customers"),
    ("cohorts", "/cohorts", "Cohorts"),
    ("campaigns", "/campaigns", "Campaigns"),
    ("data", "/data", "Data"),
    ("models", "/models", "Models"),
)


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    session: Session | None = getattr(request.state, "session", None)
    values = {
        "session": session,
        "can_ingest": session is not None and session.has(Role.INGEST),
        "can_admin": session is not None and session.has(Role.ADMIN),
        "csrf_token": session.csrf_token if session else "",
        "nav": NAV,
        "htmx": request.headers.get("hx-request") == "true",
        **context,
    }
    return TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)


def csv_download(upstream: httpx.Response, filename: str) -> Response:
    """A service's CSV passed on to the browser as it came (its bytes, its media type), to be
    saved as `filename` unless the service named the file itself."""
    disposition = upstream.headers.get("content-disposition", f'attachment; filename="{filename}"')
    return Response(
        upstream.content,
        media_type=upstream.headers.get("content-type", "text/csv; charset=utf-8"),
        headers={"Content-Disposition": disposition},
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# Number formats shared by every page, so a figure reads the same wherever it appears.
def number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def money(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}"


def percent(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value * 100:,.{digits}f}%"


def signed_percent_points(value: Any) -> str:
    if value is None:
        return ""
    return f"{value * 100:+.1f} pp"


def file_size(value: Any) -> str:
    if value is None:
        return "–"
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if value >= scale:
            digits = 0 if value >= 100 * scale else 1
            return f"{value / scale:,.{digits}f} {unit}"
    return f"{value:,} bytes"


def short_date(value: Any) -> str:
    if not value:
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d")


def label(value: Any) -> str:
    """An API's enum value as a word for people: `medium` → `Medium`, `needs_attention` →
    `Needs attention`; anything else (`VIP`) as it is."""
    if not value:
        return "–"
    text = str(value)
    if text != text.lower():
        return text
    return text.replace("_", " ").capitalize()


def chart_json(option: Any) -> Markup:
    """An ECharts option as JSON safe inside <script type="application/json">: `<`, `>` and `&`
    escaped so data (a customer id) can never close the script element."""
    text = json.dumps(option, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


TEMPLATES.env.filters.update(
    number=number,
    money=money,
    percent=percent,
    pp=signed_percent_points,
    short_date=short_date,
    label=label,
    file_size=file_size,
    chart_json=chart_json,
)
