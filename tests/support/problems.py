"""Reading and faking the services' RFC 9457 error answers (retention_shared.problems).

`field_problems` is how a test reads an error: it first proves the answer is a Problem — the
problem+json media type, the schema, `status` repeating the HTTP status and `title` its phrase —
so every test that checks a field and a problem checks the format too.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Protocol

import httpx

from retention_shared.problems import PROBLEM_MEDIA_TYPE, FieldProblem, Problem, problem


class AnyResponse(Protocol):
    """httpx's and Starlette's TestClient's responses alike."""

    status_code: int
    headers: Any

    def json(self) -> Any: ...


def problem_of(response: AnyResponse) -> Problem:
    """The response's Problem, after checking it is one for the response's status."""
    content_type = response.headers.get("content-type", "")
    assert content_type == PROBLEM_MEDIA_TYPE, f"{response.status_code}: {content_type!r}"
    found = Problem.model_validate(response.json())
    assert found.status == response.status_code, found
    assert found.title == HTTPStatus(response.status_code).phrase, found
    assert found.type == "about:blank", found
    assert found.detail, found
    return found


def field_problems(response: AnyResponse) -> list[tuple[str, str]]:
    """Every (field, problem) the error answer names, in order."""
    return [(error.field, error.problem) for error in problem_of(response).errors]


def first_problem(response: AnyResponse) -> tuple[str, str]:
    """The first (field, problem) of an error answer that names at least one field."""
    found = field_problems(response)
    assert found, f"no field named in {response.json()}"
    return found[0]


def problem_reply(status: int, field: str | None, text: str, **extensions: Any) -> httpx.Response:
    """A service's refusal as it sends it, for fakes standing in for a service: `field` None
    for a problem of no one field (a 503 before the first model)."""
    if field is None:
        body = problem(status, [], text)
    else:
        body = problem(status, [FieldProblem(field=field, problem=text)])
    content = json.dumps({**body.model_dump(), **extensions}).encode()
    return httpx.Response(status, content=content, headers={"content-type": PROBLEM_MEDIA_TYPE})
