"""Signed-in sessions: the API key stays on the server; the browser holds only a signed id.

A session lives in this process's memory and ends after `console_session_minutes` without a
request, on sign-out, or when the console restarts (then the user signs in again). The cookie
carries a random id signed with the console's secret, so a guessed or altered id is refused
before any lookup.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeSerializer

from retention_shared.auth import Role

SESSION_COOKIE = "retention_session"
SIGNIN_COOKIE = "retention_signin"
# Far above any team's concurrent users; stops a flood of sign-ins from growing memory forever.
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    api_key: str = field(repr=False)
    tenant_id: str
    roles: frozenset[Role]
    csrf_token: str = field(repr=False)
    expires_at: float

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles


class SessionStore:
    def __init__(
        self, secret: str, idle_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._signer = URLSafeSerializer(secret, salt="retention-console-session")
        self._signin_signer = URLSafeSerializer(secret, salt="retention-console-signin")
        self._idle = idle_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, api_key: str, tenant_id: str, roles: frozenset[Role]) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        now = self._clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            api_key=api_key,
            tenant_id=tenant_id,
            roles=roles,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + self._idle,
        )
        with self._lock:
            self._drop_expired(now)
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.expires_at)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session, self._signer.dumps(session.id)

    def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names (its idle time starts again), or None."""
        if not cookie:
            return None
        try:
            session_id = self._signer.loads(cookie)
        except BadSignature:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires_at <= now:
                del self._sessions[session_id]
                return None
            session.expires_at = now + self._idle
            return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def signin_token(self) -> tuple[str, str]:
        """(form token, cookie value) for the sign-in form, which has no session yet: the form
        must send back the token its cookie signs (double submit), so another site cannot sign
        a browser in with the attacker's key."""
        token = secrets.token_urlsafe(32)
        return token, self._signin_signer.dumps(token)

    def signin_token_matches(self, form_token: str | None, cookie: str | None) -> bool:
        if not form_token or not cookie:
            return False
        try:
            expected = self._signin_signer.loads(cookie)
        except BadSignature:
            return False
        return hmac.compare_digest(str(expected), form_token)

    def _drop_expired(self, now: float) -> None:
        for session_id in [s.id for s in self._sessions.values() if s.expires_at <= now]:
            del self._sessions[session_id]


def csrf_matches(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf_token, token or "")
