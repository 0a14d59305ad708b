"""The console in-process, in front of services answered by a handler: for page unit tests.

The real services are exercised by the browser tests on the real broker (tests/console/
test_browser.py); these tests check how a page turns an API answer into HTML, what it asks the
API, and how it answers failures, without starting anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from fastapi.testclient import TestClient

from retention_console.app import create_app
from retention_console.services import Services
from retention_shared.config import Settings
from tests.support.problems import problem_reply

Handler = Callable[[httpx.Request], httpx.Response]
PORTS = {"8000": "scoring", "8001": "ingest", "8002": "features", "8003": "trainer"}


@dataclass
class FakeServices:
    """Routes `(service, method, path)` to a JSON body, a status code, or a callable; records
    every request it was sent (service, method, path, params, headers)."""

    routes: dict[tuple[str, str, str], object] = field(default_factory=dict)
    roles: tuple[str, ...] = ("admin",)
    tenant: str = "default"
    down: set[str] = field(default_factory=set)
    sent: list[tuple[str, httpx.Request]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        service = PORTS[str(request.url.port)]
        self.sent.append((service, request))
        if service in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.headers.get("authorization") != "Bearer good-key":
            return problem_reply(401, "Authorization", "unknown API key")
        if request.url.path == "/v1/whoami":
            return httpx.Response(200, json={"tenant_id": self.tenant, "roles": list(self.roles)})
        answer = self.routes.get((service, request.method, request.url.path))
        if answer is None:
            return problem_reply(404, "path", "Not Found")
        if callable(answer):
            return answer(request)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    def requests_to(self, service: str, path: str) -> list[httpx.Request]:
        return [r for s, r in self.sent if s == service and r.url.path == path]


def console(fake: FakeServices, **settings: object) -> TestClient:
    """A test client of the console, not yet signed in."""
    config = Settings(api_keys="", dev_mode=True, **settings)
    app = create_app(config, Services(config, transport=httpx.MockTransport(fake.handle)))
    return TestClient(app, base_url="https://console.test")


def signed_in(fake: FakeServices, **settings: object) -> TestClient:
    client = console(fake, **settings)
    form = client.get("/signin")
    token = re.search(r'name="signin_token" value="([^"]+)"', form.text).group(1)
    response = client.post(
        "/signin", data={"api_key": "good-key", "signin_token": token}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return client


def csrf_token(client: TestClient, path: str = "/") -> str:
    """The CSRF token a page carries in its forms."""
    page = client.get(path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
