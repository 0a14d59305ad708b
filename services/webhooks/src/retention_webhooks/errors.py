"""The webhooks service's own error answers (in the shared RFC 9457 problem format, which
`retention_shared.http_errors` renders)."""

from __future__ import annotations

from fastapi import HTTPException, status

__all__ = ["webhook_not_found"]


def webhook_not_found(subscription_id: str) -> HTTPException:
    # Another tenant's subscription answers the same: as if it did not exist.
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail={
            "field": "path.webhook_id",
            "problem": f"no webhook '{subscription_id}' for this tenant",
        },
    )
