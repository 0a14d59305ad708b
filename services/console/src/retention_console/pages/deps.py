"""The pages' dependencies: who is signed in, their API client, the CSRF check every
state-changing form goes through, the session store, the staged upload files, the services'
clients and the settings. Pages reach the app's state through here only."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from starlette.datastructures import FormData

from retention_console.services import Services, SignInRequired, UserApi
from retention_console.sessions import Session, SessionStore, csrf_matches
from retention_console.staging import StagedFiles
from retention_shared.auth import Role
from retention_shared.config import Settings

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


async def current_session(request: Request) -> Session:
    session: Session | None = request.state.session
    if session is None:
        raise SignInRequired
    return session


CurrentSession = Annotated[Session, Depends(current_session)]


async def user_api(request: Request, session: CurrentSession) -> UserApi:
    return services_of(request).as_user(session.api_key)


Api = Annotated[UserApi, Depends(user_api)]


async def checked_form(request: Request, session: CurrentSession) -> FormData:
    """The posted form, once its CSRF token (field or htmx header) is the session's."""
    form = await request.form()
    token = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_matches(session, token if isinstance(token, str) else None):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="This form has expired or did not come from the console; reload the page.",
        )
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def require_role(session: Session, role: Role) -> None:
    """The console hides what a key may not do; a post that comes anyway is refused here too
    (and the service would refuse it again)."""
    if not session.has(role):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"Your API key does not have the {role.value} role needed for this.",
        )


async def ingest_session(session: CurrentSession) -> Session:
    """The session, if its key may send files: checked before a posted file is read."""
    require_role(session, Role.INGEST)
    return session


Ingester = Annotated[Session, Depends(ingest_session)]


def staged_files(request: Request) -> StagedFiles:
    return request.app.state.staged_files


Staged = Annotated[StagedFiles, Depends(staged_files)]


def session_store(request: Request) -> SessionStore:
    return request.app.state.sessions


Sessions = Annotated[SessionStore, Depends(session_store)]


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def services_of(request: Request) -> Services:
    return request.app.state.services
