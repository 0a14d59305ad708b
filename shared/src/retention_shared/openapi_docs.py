"""OpenAPI declarations the routes share, next to `problems.problem_responses`: an example of a
route's answer where its model cannot carry one (a shared event model, a plain dict), and text
bodies (CSV, Markdown, HTML) as the media types they are."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

__all__ = ["example_response", "inline_schema", "text_response"]


def example_response(
    example: Any, status: int = 200, media_type: str = "application/json"
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entry giving the route's `status` answer an example; FastAPI merges it with
    the schema of the route's response model."""
    return {status: {"content": {media_type: {"example": example}}}}


def text_response(
    description: str,
    examples: dict[str, str],
    status: int = 200,
    headers: dict[str, Any] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entry for text answers: each media type (`text/csv`, …) a string with its
    example; a route answering JSON too keeps that schema from its response model."""
    response: dict[str, Any] = {
        "description": description,
        "content": {
            media_type: {"schema": {"type": "string"}, "example": example}
            for media_type, example in examples.items()
        },
    }
    if headers:
        response["headers"] = headers
    return {status: response}


def inline_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of a type with its `$defs` written in place: for a body a route parses
    itself (so FastAPI never sees its models), declared with `WithJsonSchema`. Only for models
    that do not refer to themselves."""
    schema = TypeAdapter(annotation).json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
