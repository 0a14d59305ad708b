"""Sign in with an API key, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from retention_console.pages.deps import (
    CheckedForm,
    CurrentSession,
    Sessions,
    Staged,
    services_of,
    session_store,
    settings_of,
)
from retention_console.rendering import render
from retention_console.services import SERVICES, ServiceUnavailable, SignInRequired
from retention_console.sessions import SESSION_COOKIE, SIGNIN_COOKIE
from retention_shared.auth import Role

router = APIRouter()


def _local(target: str | None) -> str:
    """Only a path on this console: `next` must not send a signed-in user to another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _form(request: Request, *, status_code: int = 200, error: str | None = None) -> Response:
    token, cookie = session_store(request).signin_token()
    response = render(
        request,
        "signin.html",
        status_code=status_code,
        signin_token=token,
        error=error,
        next=_local(request.query_params.get("next")),
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        secure=settings_of(request).console_cookie_secure,
        max_age=3600,
    )
    return response


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    if request.state.session is not None:
        return RedirectResponse(_local(request.query_params.get("next")), status_code=303)
    return _form(request)


@router.post("/signin")
async def signin(
    request: Request,
    sessions: Sessions,
    api_key: Annotated[str, Form(max_length=512)] = "",
    signin_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    if not sessions.signin_token_matches(signin_token, request.cookies.get(SIGNIN_COOKIE)):
        return _form(request, status_code=403, error="The sign-in form expired; please try again.")
    key = api_key.strip()
    if not key:
        return _form(request, status_code=422, error="Enter your API key.")
    services = services_of(request)
    whoami = None
    # Any service can say whose key it is; ask the next when one is down.
    for service in ("scoring", *[s for s in SERVICES if s != "scoring"]):
        try:
            whoami = await services.as_user(key).get(service, "/v1/whoami")
            break
        except SignInRequired:
            return _form(request, status_code=401, error="This API key is not known to Retention.")
        except ServiceUnavailable:
            continue
    if whoami is None:
        return _form(
            request,
            status_code=503,
            error="No Retention service answers right now, so the key cannot be checked. "
            "Try again in a minute.",
        )
    roles = frozenset(Role(role) for role in whoami["roles"])
    _, cookie = sessions.create(key, whoami["tenant_id"], roles)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=settings_of(request).console_cookie_secure,
    )
    response.delete_cookie(SIGNIN_COOKIE)
    return response


@router.post("/signout")
async def signout(
    session: CurrentSession, _: CheckedForm, sessions: Sessions, staged: Staged
) -> Response:
    sessions.end(session)
    staged.discard_session(session.id)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
