"""RFC 9457 problem details: the one error body every service sends, and its OpenAPI declaration.

Every 4xx/5xx answer of every service is `application/problem+json`:

    {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
     "detail": "query.limit: Input should be less than or equal to 1000",
     "errors": [{"field": "query.limit", "problem": "Input should be less than or equal to 1000"}]}

`type` stays `about:blank` (RFC 9457 §4.2.1: the status says what kind of problem it is), so
`title` is the status' phrase. `errors` names each field at fault — `query.<name>`,
`path.<name>`, a body field by its path in the body (`lines.0.quantity`, `filters.segment`), the
`Authorization` header — or `body` for a body that cannot be read at all (not JSON: the problem
names the character position); it is empty when no one field is at fault (a 503, a 500).
`detail` is the same in one sentence, for people and logs. A few answers add extension members
(RFC 9457 §3.2): ingest's refusals a `code` (a reason code such as `unknown_format`), its 409 for
a changed order the `conflicts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel):
    """One thing wrong with a request, and where."""

    field: str = Field(
        description="`query.<name>`, `path.<name>`, a body field by its path in the body "
        "(`lines.0.quantity`), `body` (the whole body), `Authorization`, or the header or "
        "resource at fault.",
        examples=["query.limit"],
    )
    problem: str = Field(examples=["Input should be less than or equal to 1000"])


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(default="about:blank", description="Always `about:blank`: see `status`.")
    title: str = Field(description="The HTTP status' phrase.", examples=["Unprocessable Entity"])
    status: int = Field(description="The HTTP status code, repeated.", examples=[422])
    detail: str = Field(
        description="What went wrong, in one sentence.",
        examples=["query.limit: Input should be less than or equal to 1000"],
    )
    errors: list[FieldProblem] = Field(
        default_factory=list, description="Each field at fault (empty when none is)."
    )


def problem(status: int, errors: list[FieldProblem], detail: str | None = None) -> Problem:
    """The problem for `status` with these field errors; `detail` defaults to them joined."""
    if detail is None:
        detail = "; ".join(f"{e.field}: {e.problem}" for e in errors) or HTTPStatus(status).phrase
    return Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)


def problem_response(
    status: int,
    errors: Sequence[FieldProblem] = (),
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The HTTP answer carrying `problem(status, errors, detail)` as problem+json. `headers`
    keep what the status needs (`WWW-Authenticate` on 401, `Retry-After` on 503, `Allow` on
    405); `extensions` are further members (RFC 9457 §3.2), never replacing the standard ones."""
    body = problem(int(status), list(errors), detail).model_dump()
    for name, value in (extensions or {}).items():
        body.setdefault(name, value)
    return JSONResponse(
        body, status_code=int(status), headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE
    )


# What each status means in these APIs, and an example error, for the OpenAPI documents.
_EXAMPLES: dict[int, tuple[str, FieldProblem]] = {
    400: ("The request cannot be read.", FieldProblem(field="body", problem="not JSON")),
    401: (
        "No API key, a malformed Authorization header, or an unknown key.",
        FieldProblem(field="Authorization", problem="unknown API key"),
    ),
    403: (
        "The key's roles do not allow this.",
        FieldProblem(field="Authorization", problem="this key lacks the admin role"),
    ),
    404: (
        "Nothing with this id for the key's tenant.",
        FieldProblem(field="path.customer_id", problem="no customer '17850' for this tenant"),
    ),
    409: (
        "The request conflicts with the current state.",
        FieldProblem(field="run_id", problem="run 'r-1' is still running"),
    ),
    413: (
        "The body is larger than the limit.",
        FieldProblem(field="body", problem="request body is larger than 1048576 bytes"),
    ),
    415: (
        "The body's media type is not one this route reads.",
        FieldProblem(field="Content-Type", problem="must be application/json"),
    ),
    422: (
        "A field is missing, malformed or out of range.",
        FieldProblem(field="query.limit", problem="Input should be less than or equal to 1000"),
    ),
    503: (
        "Not ready yet: no model for the tenant, or the broker is not reachable.",
        FieldProblem(field="model", problem="no model has been trained for this tenant yet"),
    ),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status as problem+json with the Problem schema and an
    example, so the documented error body is the one actually sent."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, example = _EXAMPLES[status]
        responses[status] = {
            "description": description,
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": f"{_REF_PREFIX}Problem"},
                    "example": problem(status, [example]).model_dump(),
                }
            },
        }
    return responses


_REF_PREFIX = "#/components/schemas/"


def add_problem_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """Put `Problem` and `FieldProblem` into an OpenAPI document's components (the routes'
    `problem_responses` refer to them by name; FastAPI only adds schemas of response models)."""
    schema = Problem.model_json_schema(ref_template=_REF_PREFIX + "{model}")
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["Problem"] = schema
    return openapi
