"""How a failure reaches a person: a readable page (or htmx fragment), never a stack trace."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from retention_console.rendering import file_size, is_htmx, render
from retention_console.services import (
    SERVICE_TITLES,
    ApiError,
    NoModelYet,
    ServiceUnavailable,
    SignInRequired,
)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(NoModelYet, no_model_yet)
    app.add_exception_handler(ServiceUnavailable, service_unavailable)
    app.add_exception_handler(ApiError, api_error)


async def sign_in_required(request: Request, _: Exception) -> Response:
    session = request.state.session
    if session is not None:
        # The services refused its key (revoked or changed): the session is over.
        request.app.state.sessions.end(session)
        request.state.session = None
    target = "/signin"
    if request.method == "GET" and request.url.path != "/":
        target += "?next=" + quote(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def no_model_yet(request: Request, exc: Exception) -> Response:
    return render(request, "empty.html", message=None)


async def service_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceUnavailable)
    return render(
        request,
        "problem.html",
        status_code=503,
        title=f"{SERVICE_TITLES.get(exc.service, exc.service)} is not answering",
        message=(
            f"This page needs {exc.service}, and {exc.reason}. Nothing is lost: the data stays "
            "where it is. Try again in a minute; if it lasts, ask whoever runs Retention to "
            f"check the {exc.service} service."
        ),
    )


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    titles = {
        403: "Your key does not allow this",
        404: "Not found",
        409: "Not possible right now",
        413: "Too large",
        415: "Unsupported file",
    }
    return render(
        request,
        "problem.html",
        status_code=exc.status if 400 <= exc.status < 500 else 502,
        title=titles.get(exc.status, "The request was refused"),
        message=exc.problem,
    )


def too_large(request: Request) -> Response:
    """The page for a request body over the console's limit: a file too large to upload, or a
    form far larger than any of the console's."""
    if not request.url.path.startswith("/data/"):
        return render(
            request,
            "problem.html",
            status_code=413,
            title="Too large",
            message="This form sent far more than the console accepts; reload the page.",
        )
    limit = file_size(request.app.state.settings.max_upload_bytes)
    return render(
        request,
        "problem.html",
        status_code=413,
        title="This file is too large",
        message=(
            f"The console accepts files of up to {limit}. Compress the export (gzip), or split "
            "it by date and upload the parts one after another."
        ),
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    titles = {403: "Not allowed", 404: "Page not found", 405: "Not allowed here", 413: "Too large"}
    return render(
        request,
        "problem.html",
        status_code=exc.status_code,
        title=titles.get(exc.status_code, "Something is wrong with this request"),
        message=str(exc.detail),
    )
