"""The features service's own error answers (in the shared RFC 9457 problem format, which
`retention_shared.http_errors` renders)."""

from __future__ import annotations

from fastapi import HTTPException, status


def customer_not_found(customer_id: str) -> HTTPException:
    # The same answer for an unknown id and another tenant's customer: nothing to tell apart.
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail={"field": "customer_id", "problem": f"no customer {customer_id!r}"},
    )
