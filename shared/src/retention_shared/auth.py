"""API-key auth for every HTTP service: the key decides the tenant and the roles.

`RETENTION_API_KEYS` holds `key:tenant:role1+role2,...`. A request sends `Authorization: Bearer
<key>`. No request ever names its tenant: routes take the tenant from the `Principal`, so a key of
tenant A cannot reach B's data. `admin` includes the other roles within its tenant.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from retention_shared.config import Settings

DEFAULT_TENANT = "default"


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles


class AuthConfigError(ValueError):
    """RETENTION_API_KEYS is malformed, or empty outside dev mode."""


@dataclass(frozen=True)
class ApiKeys:
    """The configured keys; `find` compares the candidate with every key in constant time."""

    entries: tuple[tuple[bytes, Principal], ...]

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        entries = []
        for position, item in enumerate(filter(None, (s.strip() for s in spec.split(","))), 1):
            parts = item.split(":")
            if len(parts) != 3 or not all(parts):
                raise AuthConfigError(
                    f"RETENTION_API_KEYS entry {position} must look like key:tenant:role1+role2"
                )
            key, tenant, role_list = parts
            try:
                roles = frozenset(Role(role) for role in role_list.split("+"))
            except ValueError:
                raise AuthConfigError(
                    f"RETENTION_API_KEYS entry {position} ({tenant}) has an unknown role in "
                    f"{role_list!r}; roles are {', '.join(r.value for r in Role)}"
                ) from None
            entries.append((key.encode(), Principal(tenant, roles)))
        return cls(tuple(entries))

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        keys = cls.parse(settings.api_keys.get_secret_value())
        if not keys.entries and not settings.dev_mode:
            raise AuthConfigError(
                "no API keys configured: set RETENTION_API_KEYS=key:tenant:roles "
                "(or RETENTION_DEV_MODE=1 for a local development stack)"
            )
        return keys

    def find(self, candidate: str) -> Principal | None:
        found = None
        given = candidate.encode()
        # No early exit: the time taken does not depend on which key (if any) matched.
        for key, principal in self.entries:
            if hmac.compare_digest(key, given):
                found = principal
        return found


def generate_dev_key(tenant: str = DEFAULT_TENANT) -> str:
    """One admin key for a local development stack, in RETENTION_API_KEYS form."""
    return f"dev-{secrets.token_urlsafe(24)}:{tenant}:{Role.ADMIN.value}"


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail={"field": "Authorization", "problem": message},
        headers={"WWW-Authenticate": "Bearer"},
    )


# Declares the scheme in every service's OpenAPI (Swagger's Authorize button takes a key); the
# header is still read below, so each way of getting it wrong keeps its own 401 message.
API_KEY_SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="API key",
    description="An API key from RETENTION_API_KEYS: `Authorization: Bearer <key>`. The key "
    "decides the tenant and the roles (ingest, read, admin).",
)


# async: sync dependencies each cost a worker-thread hop per request (bench/scoring).
async def authenticate(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(API_KEY_SCHEME)],
) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing; send 'Authorization: Bearer <api key>'")
    scheme, _space, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("must be 'Bearer <api key>'")
    keys: ApiKeys = request.app.state.api_keys
    principal = keys.find(token.strip())
    if principal is None:
        raise _unauthorized("unknown API key")
    return principal


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency: the caller's principal, if it holds `role` (else 401/403)."""

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail={"field": "Authorization", "problem": f"this key lacks the {role} role"},
            )
        return principal

    return dependency


AnyCaller = Annotated[Principal, Depends(authenticate)]
IngestCaller = Annotated[Principal, Depends(require(Role.INGEST))]
ReadCaller = Annotated[Principal, Depends(require(Role.READ))]
AdminCaller = Annotated[Principal, Depends(require(Role.ADMIN))]
