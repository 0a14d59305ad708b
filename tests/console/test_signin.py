"""Sign-in, sessions, CSRF and failures as a person meets them, with the services faked."""

from __future__ import annotations

import re

from tests.console.support import FakeServices, console, csrf_token, signed_in


def _signin_form(client) -> str:
    page = client.get("/signin")
    assert page.status_code == 200
    return re.search(r'name="signin_token" value="([^"]+)"', page.text).group(1)


def test_pages_send_an_anonymous_visitor_to_sign_in_and_back() -> None:
    client = console(FakeServices())
    response = client.get("/customers?segment=Lost", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/customers%3Fsegment%3DLost"


def test_an_unknown_key_is_refused_with_a_message_and_no_session() -> None:
    client = console(FakeServices())
    token = _signin_form(client)
    response = client.post("/signin", data={"api_key": "wrong", "signin_token": token})
    assert response.status_code == 401
    assert "not known to Retention" in response.text
    assert "retention_session" not in response.cookies


def test_the_session_cookie_is_httponly_samesite_and_holds_no_key() -> None:
    client = console(FakeServices(), console_cookie_secure=True)
    token = _signin_form(client)
    response = client.post(
        "/signin",
        data={"api_key": "good-key", "signin_token": token, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    # `next` may only be a path on the console.
    assert response.headers["location"] == "/"
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith("retention_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "good-key" not in cookie


def test_sign_in_needs_the_token_its_own_form_carried() -> None:
    client = console(FakeServices())
    _signin_form(client)
    response = client.post("/signin", data={"api_key": "good-key", "signin_token": "forged"})
    assert response.status_code == 403
    assert "retention_session" not in response.cookies


def test_sign_out_needs_the_csrf_token_and_ends_the_session() -> None:
    fake = FakeServices()
    client = signed_in(fake)
    forged = client.post("/signout", data={"csrf_token": "nope"}, follow_redirects=False)
    assert forged.status_code == 403
    token = csrf_token(client, "/segments")
    done = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/signin"
    assert client.get("/segments", follow_redirects=False).status_code == 303


def test_sessions_expire_after_their_idle_time() -> None:
    client = signed_in(FakeServices())
    sessions = client.app.state.sessions
    for session in list(sessions._sessions.values()):
        session.expires_at = 0
    assert client.get("/segments", follow_redirects=False).status_code == 303


def test_a_stopped_service_is_a_readable_message_not_a_trace() -> None:
    fake = FakeServices(down={"scoring"})
    client = console(fake)
    token = _signin_form(client)
    # Sign-in asks another service when scoring is down.
    response = client.post(
        "/signin", data={"api_key": "good-key", "signin_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    page = client.get("/")
    assert page.status_code == 503
    assert "The scoring service is not answering" in page.text
    assert "Traceback" not in page.text


def test_pages_carry_security_headers_and_are_not_cached() -> None:
    client = signed_in(FakeServices())
    page = client.get("/segments")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
