"""What the request handlers share: the application's keys, settings, and small helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from istio_canary.dashboard.kube import KubeGateway
from istio_canary.dashboard.prom import Prometheus
from istio_canary.dashboard.sessions import Session, Sessions

__all__ = ["KUBE", "PROMETHEUS", "SESSIONS", "SETTINGS", "Settings", "error", "json_object", "session_of"]


@dataclass(frozen=True)
class Settings:
    """How the server behaves; ``secure_cookies=False`` only for plain HTTP on loopback."""

    secure_cookies: bool = True
    session_seconds: int = 8 * 3600
    chart_minutes: int = 15
    rate_window_seconds: int = 60
    token_review_seconds: float = 60.0


SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
KUBE: web.AppKey[KubeGateway] = web.AppKey("kube", KubeGateway)
PROMETHEUS: web.AppKey[Prometheus | None] = web.AppKey("prometheus")
_SESSION: web.RequestKey[Session] = web.RequestKey("session", Session)


def error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    """An HTTP error with a JSON body ``{"error": message}``, to raise."""
    return kind(text=web.json_response({"error": message}).text, content_type="application/json")


def remember_session(request: web.Request, session: Session) -> None:
    request[_SESSION] = session


def session_of(request: web.Request) -> Session:
    """The signed-in user's session (every handler behind the session guard has one)."""
    return request[_SESSION]


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise error(web.HTTPBadRequest, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise error(web.HTTPBadRequest, "the body must be a JSON object")
    return body
