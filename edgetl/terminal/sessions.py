"""Who is at the terminal: server-side sessions behind an HttpOnly, SameSite=Strict cookie.

A session holds the signed-in person's bearer token (never sent back to the
browser, never in a URL), their name and role as the server reported them,
and a CSRF token the page must echo in a header on every change. Without
security on the server (loopback, everyone is admin) a session is made
without sign-in and never expires; with security it ends after
`idle_s` seconds unused, and the person signs in again.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

COOKIE = "edgetl_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 1000


@dataclass
class Session:
    id: str
    csrf: str
    token: str = ""  # the person's bearer token; empty without security
    name: str = ""
    role: str = ""
    security: bool = True  # the server tells callers apart: sessions expire and need a token
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)

    @property
    def signed_in(self) -> bool:
        return bool(self.role)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC call metadata carrying this person's identity."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


#: Where the guard puts a request's Session (None only for /api/session before one exists).
SESSION = web.RequestKey("session", object)


class Expired(Exception):
    """The cookie named a session that ended for lack of use."""


class Sessions:
    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self._sessions: dict[str, Session] = {}
        # Ids of sessions that timed out, so every request still carrying one
        # (a page fires several at once) hears "expired", not "who are you".
        self._expired: dict[str, float] = {}

    def new(self, **fields) -> Session:
        self._prune()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), **fields)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session, touched; None if unknown. Raises Expired if it timed out."""
        session = self._sessions.get(session_id or "")
        if session is None:
            if session_id in self._expired:
                raise Expired()
            return None
        now = time.monotonic()
        if session.security and now - session.last_used > self.idle_s:
            self._expire(session)
            raise Expired()
        session.last_used = now
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def _expire(self, session: Session) -> None:
        del self._sessions[session.id]
        self._expired[session.id] = time.monotonic()
        while len(self._expired) > MAX_SESSIONS:
            del self._expired[next(iter(self._expired))]  # the oldest first

    def _prune(self) -> None:
        now = time.monotonic()
        for session in [s for s in self._sessions.values() if s.security and now - s.last_used > self.idle_s]:
            self._expire(session)
        while len(self._sessions) >= MAX_SESSIONS:  # the oldest unused go first
            del self._sessions[min(self._sessions.values(), key=lambda s: s.last_used).id]
