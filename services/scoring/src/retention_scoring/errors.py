"""The scoring service's own errors, and the HTTP answers its routes give (in the shared RFC 9457
problem format, which `retention_shared.http_errors` renders)."""

from __future__ import annotations

from fastapi import HTTPException, status

__all__ = ["ScoringUnavailable", "not_found", "unavailable", "unprocessable"]

RETRY_AFTER_SECONDS = "30"


class ScoringUnavailable(Exception):
    """Scores cannot be computed for a tenant right now (no champion yet, or still loading)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def not_found(customer_id: str) -> HTTPException:
    # The same answer for an unknown id and another tenant's customer: nothing to tell apart.
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail={"field": "customer_id", "problem": f"no customer {customer_id!r}"},
    )


def unprocessable(field: str, problem: str) -> HTTPException:
    """A 422 in the shape of the service's validation errors: a list of {field, problem}."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_ENTITY, detail=[{"field": field, "problem": problem}]
    )


def unavailable(reason: str) -> HTTPException:
    """A 503 with `Retry-After`: the tenant's champion is missing or still loading."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail={"problem": reason},
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
