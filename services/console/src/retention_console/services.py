"""The console's one way to reach the services: their HTTP APIs, with the signed-in user's key.

Every failure becomes one of three answers a page can show: the service is not answering
(`ServiceUnavailable`), the key is no longer valid (`SignInRequired`), or the API refused the
request with a reason (`ApiError`, e.g. 403 for a role the key lacks, 409 before a model exists).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from retention_shared.config import Settings

log = logging.getLogger(__name__)

SERVICES = ("ingest", "features", "trainer", "scoring")
SERVICE_TITLES = {
    "ingest": "The ingest service",
    "features": "The features service",
    "trainer": "The trainer",
    "scoring": "The scoring service",
}

# How scoring's 503 begins when the tenant simply has no model yet (retention_scoring.state).
NO_CHAMPION = "no champion model"


class ServiceUnavailable(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class NoModelYet(ServiceUnavailable):
    """Scoring runs but the tenant has no champion model yet: an empty state, not an outage."""


class SignInRequired(Exception):
    """No session, or the services no longer accept its key."""


@dataclass
class ApiError(Exception):
    service: str
    status: int
    detail: Any

    def __str__(self) -> str:
        return f"{self.service} answered {self.status}: {self.problem}"

    @property
    def field_problem(self) -> tuple[str | None, str]:
        """(the field at fault or None, the API's own words for what is wrong)."""
        return field_problem(self.detail)

    @property
    def problem(self) -> str:
        """The API's own words for what is wrong, naming the field unless it is the key."""
        field, problem = self.field_problem
        return f"{field}: {problem}" if field and field != "Authorization" else problem


class Services:
    """One connection pool to all four services; `as_user` binds a key to it."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.urls = {name: settings.console_url_of(name) for name in SERVICES}
        # Pages wait on these calls: a stuck service must become a message, not a hung page.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(15.0, connect=2.0), transport=transport
        )

    def as_user(self, api_key: str) -> UserApi:
        return UserApi(self, api_key)

    async def close(self) -> None:
        await self._client.aclose()

    async def request(
        self, service: str, method: str, path: str, api_key: str, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {api_key}", **kwargs.pop("headers", {})}
        try:
            response = await self._client.request(
                method, self.urls[service] + path, headers=headers, **kwargs
            )
        except httpx.TimeoutException:
            raise ServiceUnavailable(service, "it did not answer in time") from None
        except httpx.TransportError as exc:
            # The user reads words; the operator gets the transport error in the log.
            log.warning("%s cannot be reached: %r", service, exc)
            raise ServiceUnavailable(service, "it cannot be reached") from None
        if response.status_code == 401:
            raise SignInRequired
        if response.status_code >= 500:
            reason = _reason(response)
            if service == "scoring" and reason.startswith(NO_CHAMPION):
                raise NoModelYet(service, reason)
            raise ServiceUnavailable(service, reason)
        if response.status_code >= 400:
            raise ApiError(service, response.status_code, _body(response))
        return response


class UserApi:
    """The services as one signed-in user sees them."""

    def __init__(self, services: Services, api_key: str) -> None:
        self._services = services
        self._key = api_key

    async def get(self, service: str, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None and v != ""}
        response = await self._services.request(service, "GET", path, self._key, params=clean)
        return response.json()

    async def get_raw(
        self, service: str, path: str, *, accept: str | None = None, **params: Any
    ) -> httpx.Response:
        """The service's response as it came (a CSV to pass on); `accept` asks for a format."""
        clean = {k: v for k, v in params.items() if v is not None and v != ""}
        headers = {"Accept": accept} if accept else {}
        return await self._services.request(
            service, "GET", path, self._key, params=clean, headers=headers
        )

    async def post(self, service: str, path: str, **kwargs: Any) -> Any:
        response = await self._services.request(service, "POST", path, self._key, **kwargs)
        return response.json() if response.content else None

    async def post_raw(
        self, service: str, path: str, *, accept: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A POST's response as it came (the CSV of a plan to pass on); `accept` asks for a
        format."""
        headers = {"Accept": accept} if accept else {}
        return await self._services.request(
            service, "POST", path, self._key, headers=headers, **kwargs
        )

    async def put(self, service: str, path: str, **kwargs: Any) -> Any:
        response = await self._services.request(service, "PUT", path, self._key, **kwargs)
        return response.json() if response.content else None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def field_problem(body: Any) -> tuple[str | None, str]:
    """(field, problem) of a service's error body: an RFC 9457 problem (retention_shared.problems)
    names its first field at fault in `errors`, else says what is wrong in `detail`; a body of
    another shape (a proxy's page) is shown as it came."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return first.get("field"), str(first.get("problem") or body.get("detail", ""))
        if body.get("detail") or body.get("title"):
            return None, str(body.get("detail") or body["title"])
    return None, str(body)


def _reason(response: httpx.Response) -> str:
    body = _body(response)
    if isinstance(body, dict) and (body.get("errors") or body.get("detail")):
        return field_problem(body)[1]
    return f"it answered {response.status_code}"
