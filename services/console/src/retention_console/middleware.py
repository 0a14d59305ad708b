"""What every response goes through: the session found from its cookie, security headers set.

Everything the pages load is served from `/static`: no CDN, so the console works offline, and no
inline script, so a value that slipped past escaping still cannot run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from retention_console import errors
from retention_console.sessions import SESSION_COOKIE
from retention_shared.problems import PROBLEM_MEDIA_TYPE

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)
# A sign-in or page form is small; only the upload form carries a file.
FORM_BYTES = 1024 * 1024


async def session_and_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    request.state.session = request.app.state.sessions.find(request.cookies.get(SESSION_COOKIE))
    response = await call_next(request)
    if response.status_code == 413 and response.headers.get("content-type") == PROBLEM_MEDIA_TYPE:
        # The body size limit answered before any page could: a readable page instead.
        response = errors.too_large(request)
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.url.path.startswith("/static/"):
        # Pages show one tenant's customers: never from a shared cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response
