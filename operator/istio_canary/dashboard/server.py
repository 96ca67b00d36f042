"""The aiohttp application: pages, sign-in and sign-out, and the guards every request passes.

Guards, in order: security headers on every answer; a session for every page and API call
(pages redirect to /login, the API answers 401); for every POST a JSON body and, once signed
in, the session's CSRF token in the ``X-CSRF-Token`` header (403 otherwise). Which reads and
actions the user may do is asked of the API server per request (``api``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from istio_canary.dashboard import api
from istio_canary.dashboard.context import (
    KUBE,
    PROMETHEUS,
    SESSIONS,
    SETTINGS,
    Settings,
    error,
    json_object,
    remember_session,
    session_of,
)
from istio_canary.dashboard.kube import ApiError, KubeGateway
from istio_canary.dashboard.prom import Prometheus
from istio_canary.dashboard.sessions import COOKIE_NAME, Session, Sessions

__all__ = ["STATIC", "Settings", "build_app", "is_loopback"]

STATIC = Path(__file__).parent / "static"
log = structlog.get_logger("istio_canary.dashboard")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC = ("/login", "/api/login", "/healthz", "/static/")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)



def _is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as refused:
        response = refused
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "POST" and request.content_type != "application/json":
        raise error(web.HTTPUnsupportedMediaType, "POST a JSON body")
    if _is_public(request.path):
        return await handler(request)
    session = await _live_session(request)
    if session is None:
        if request.path.startswith("/api/"):
            raise error(web.HTTPUnauthorized, "sign in first")
        raise web.HTTPSeeOther("/login")
    if request.method == "POST" and not session.csrf_matches(request.headers.get("X-CSRF-Token")):
        raise error(web.HTTPForbidden, "missing or wrong CSRF token")
    remember_session(request, session)
    try:
        return await handler(request)
    except ApiError as failed:
        # The dashboard's own call failed (the user's refusals are answered by the handlers).
        log.warning("API server call failed", path=request.path, status=failed.status)
        raise error(web.HTTPBadGateway, f"the API server answered {failed.status}") from None



async def _live_session(request: web.Request) -> Session | None:
    """The cookie's session, its token reviewed again every ``token_review_seconds``: a token
    that was revoked or has expired ends the session at the next request."""
    sessions, session_id = request.app[SESSIONS], request.cookies.get(COOKIE_NAME)
    session = sessions.get(session_id)
    every = request.app[SETTINGS].token_review_seconds
    if session is None or session_id is None or not sessions.needs_review(session, every_seconds=every):
        return session
    user = await request.app[KUBE].review_token(session.token)
    if user != session.user:
        log.info("session ended", user=session.user.username, reason="token no longer accepted")
        sessions.close(session_id)
        return None
    sessions.reviewed(session_id)
    return session


async def login(request: web.Request) -> web.Response:
    """Sign in: the token is reviewed by the API server and kept only in the server's memory."""
    _same_origin_or_403(request)
    body = await json_object(request)
    token = body.get("token")
    if not isinstance(token, str) or not token.strip() or len(token) > 16384:
        raise error(web.HTTPUnauthorized, "a bearer token is needed")
    try:
        user = await request.app[KUBE].review_token(token.strip())
    except ApiError as failed:
        raise error(web.HTTPServiceUnavailable, f"token review failed: {failed.status}") from None
    if user is None:
        log.info("sign-in refused", reason="token not accepted")
        raise error(web.HTTPUnauthorized, "the API server does not accept this token")
    log.info("signed in", user=user.username)
    sessions, settings = request.app[SESSIONS], request.app[SETTINGS]
    session_id, session = sessions.open(token=token.strip(), user=user)
    response = web.json_response({"user": user.username, "csrf": session.csrf})
    response.set_cookie(
        COOKIE_NAME, session_id, httponly=True, secure=settings.secure_cookies, samesite="Strict",
        path="/", max_age=settings.session_seconds,
    )  # fmt: skip
    return response


async def logout(request: web.Request) -> web.Response:
    request.app[SESSIONS].close(request.cookies.get(COOKIE_NAME))
    response = web.json_response({"signedOut": True})
    response.del_cookie(COOKIE_NAME, path="/")
    return response


async def session_info(request: web.Request) -> web.Response:
    session = session_of(request)
    return web.json_response({"user": session.user.username, "csrf": session.csrf})


def _same_origin_or_403(request: web.Request) -> None:
    """A sign-in posted from another site's page is refused (login CSRF)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise error(web.HTTPForbidden, "cross-site sign-in refused")



def _page(name: str) -> Handler:
    async def serve(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name)

    return serve


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_app(*, kube: KubeGateway, prometheus: Prometheus | None, settings: Settings) -> web.Application:
    app = web.Application(middlewares=[security_headers, require_session], client_max_size=64 * 1024)
    app[SESSIONS] = Sessions(ttl_seconds=settings.session_seconds)
    app[SETTINGS] = settings
    app[KUBE], app[PROMETHEUS] = kube, prometheus
    api.add_routes(app.router)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/login", _page("login.html"))
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/session", session_info)
    for path in ("/", "/releases/{namespace}/{name}", "/topology/{namespace}"):
        app.router.add_get(path, _page("index.html"))
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
