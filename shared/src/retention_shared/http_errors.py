"""Every error a service app answers becomes one RFC 9457 problem (`retention_shared.problems`).

Routes keep raising `HTTPException(status, detail={"field": ..., "problem": ...})` (or a list of
such dicts); the handlers here turn that, FastAPI's validation errors, the framework's own
one-sentence answers (unknown path, wrong method, unreadable body) and unexpected exceptions
into `application/problem+json`, so route code stays small and no client sees two shapes.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from retention_shared.problems import FieldProblem, problem_response


def install_problem_handlers(app: FastAPI) -> None:
    """Make every 4xx/5xx of `app` a problem+json answer."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Starlette calls this from its outermost middleware and re-raises, so the server still
    # logs the traceback; the client gets a problem without one.
    app.add_exception_handler(Exception, _unexpected_error)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_validation_problem(error) for error in exc.errors()]
    return problem_response(422, errors)


def _validation_problem(error: dict[str, Any]) -> FieldProblem:
    if error["type"] == "json_invalid":
        # Its location is a character position, not a field: the body is what is wrong.
        position = error["loc"][-1]
        reason = (error.get("ctx") or {}).get("error", "")
        return FieldProblem(field="body", problem=f"not JSON: {reason} at character {position}")
    return FieldProblem(
        field=".".join(str(part) for part in error["loc"] if part != "body") or "body",
        problem=error["msg"],
    )


# What a framework answer with only a sentence (unmatched route, unparseable body) is about.
_FIELD_OF_STATUS = {400: "body", 404: "path", 405: "method", 413: "body", 415: "body"}
# The members a problem has by definition: a route's detail cannot overwrite them.
_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "errors"})


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """A route's `{"field", "problem"}` details (one or a list) become the problem's `errors`,
    any other keys (ingest's `code`, a conflict's `conflicts`) extension members; a detail
    without a field becomes the problem's `detail` sentence. FastAPI's and Starlette's own
    answers carry only a sentence ("There was an error parsing the body" for a body that is
    not UTF-8 or nested too deeply, "Not Found" for a path no route matches): they name the
    part of the request at fault too."""
    assert isinstance(exc, StarletteHTTPException)
    detail: Any = exc.detail
    if isinstance(detail, str) and exc.status_code in _FIELD_OF_STATUS:
        detail = {"field": _FIELD_OF_STATUS[exc.status_code], "problem": _framework_problem(exc)}
    errors, sentence, extensions = _parts(detail)
    return problem_response(
        exc.status_code, errors, sentence, headers=exc.headers, extensions=extensions
    )


def _framework_problem(exc: StarletteHTTPException) -> str:
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not UTF-8 ({cause.reason} at byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "the body is nested too deeply to parse"
    return str(exc.detail)


def _parts(detail: Any) -> tuple[list[FieldProblem], str | None, dict[str, Any]]:
    """(field errors, the detail sentence or None for the default, extension members)."""
    items = detail if isinstance(detail, list) else [detail]
    errors: list[FieldProblem] = []
    sentences: list[str] = []
    extensions: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict):
            if item is not None and str(item):
                sentences.append(str(item))
            continue
        field, text = item.get("field"), item.get("problem")
        if field and text:
            errors.append(FieldProblem(field=str(field), problem=str(text)))
            sentences.append(f"{field}: {text}")
        elif text:
            sentences.append(str(text))
        for key, value in item.items():
            if key not in {"field", "problem"} and key not in _PROBLEM_MEMBERS:
                extensions.setdefault(key, value)
    return errors, "; ".join(sentences) or None, extensions


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # No trace of the exception in the body: it may hold paths, data or other tenants' ids.
    return problem_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        [],
        "The service failed to answer this request; the failure has been logged.",
    )
