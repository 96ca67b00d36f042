"""Who is signed in: sessions kept in memory, each holding the user's token. (pure)

The browser gets only a random session id (in an HttpOnly cookie) and a CSRF token; the bearer
token never leaves the server, and ``repr`` of a session leaves it out, so a log line or a
traceback cannot show it.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["COOKIE_NAME", "Session", "Sessions", "User"]

COOKIE_NAME = "ico_dashboard_session"


@dataclass(frozen=True)
class User:
    """The user a TokenReview answered with: what a SubjectAccessReview asks about."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires_at: float
    token: str = field(repr=False)
    reviewed_at: float = 0.0
    """When the API server last accepted the token (a revoked or expired token ends the session)."""

    def csrf_matches(self, candidate: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed byte by byte."""
        return candidate is not None and hmac.compare_digest(candidate, self.csrf)


class Sessions:
    """Session id -> session, for ``ttl_seconds`` after sign-in; restarting the server signs everyone out."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 8 * 3600,
        clock: Callable[[], float] = time.monotonic,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self._ttl, self._clock, self._new_secret = ttl_seconds, clock, new_secret
        self._by_id: dict[str, Session] = {}

    def open(self, *, token: str, user: User) -> tuple[str, Session]:
        self._drop_expired()
        session_id = self._new_secret()
        session = Session(
            user=user, csrf=self._new_secret(), expires_at=self._clock() + self._ttl, token=token,
            reviewed_at=self._clock(),
        )
        self._by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None or session.expires_at <= self._clock():
            self._by_id.pop(session_id, None)
            return None
        return session

    def needs_review(self, session: Session, *, every_seconds: float) -> bool:
        return self._clock() - session.reviewed_at >= every_seconds

    def reviewed(self, session_id: str) -> None:
        """The token was accepted again just now."""
        session = self._by_id.get(session_id)
        if session is not None:
            self._by_id[session_id] = dataclasses.replace(session, reviewed_at=self._clock())

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)

    def _drop_expired(self) -> None:
        now = self._clock()
        for session_id in [k for k, s in self._by_id.items() if s.expires_at <= now]:
            del self._by_id[session_id]
