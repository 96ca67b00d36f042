"""The JSON API behind the pages: every handler asks the API server whether the signed-in user
may do what the request does (a SubjectAccessReview) before it reads or changes anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from istio_canary.dashboard import access, series, topology, verbs, views
from istio_canary.dashboard.context import (
    KUBE,
    PROMETHEUS,
    SETTINGS,
    error,
    json_object,
    session_of,
)
from istio_canary.dashboard.kube import ApiError, ForbiddenError, NotFoundError
from istio_canary.dashboard.prom import PrometheusError
from istio_canary.plugin.patches import PluginError, describe_patch

__all__ = ["ROUTES", "add_routes"]

log = structlog.get_logger("istio_canary.dashboard")


async def _require(request: web.Request, check: access.Check) -> None:
    """403, and nothing read or changed, unless the API server says the user may."""
    if not await request.app[KUBE].can(session_of(request).user, check):
        raise error(web.HTTPForbidden, f"you may not {check.verb} {check.resource} in {check.namespace}")


async def _release(request: web.Request) -> dict[str, Any]:
    info = request.match_info
    try:
        return await request.app[KUBE].get_release(info["namespace"], info["name"])
    except NotFoundError:
        raise error(web.HTTPNotFound, "no such release") from None


async def list_releases(request: web.Request) -> web.Response:
    """The releases of every namespace the user may list releases in."""
    kube, user = request.app[KUBE], session_of(request).user
    releases = await kube.list_releases()
    namespaces = sorted({r["metadata"]["namespace"] for r in releases})
    answers = await asyncio.gather(*(kube.can(user, access.list_check(ns)) for ns in namespaces))
    visible = {ns for ns, yes in zip(namespaces, answers, strict=True) if yes}
    now = datetime.now(UTC)
    rows = [views.release_row(r, now=now) for r in releases if r["metadata"]["namespace"] in visible]
    rows.sort(key=lambda row: (row["namespace"], row["name"]))
    return web.json_response({"releases": rows, "namespaces": sorted(visible)})


async def release_detail(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    await _require(request, access.read_check(namespace, name))
    release = await _release(request)
    kube, user = request.app[KUBE], session_of(request).user
    events = await kube.release_events(namespace, name) if await kube.can(user, access.events_check(namespace)) else []
    return web.json_response(views.release_detail(release, events, now=datetime.now(UTC)))


async def release_metrics(request: web.Request) -> web.Response:
    """Per-version request rate, success rate and latency over the last ``chart_minutes``."""
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    await _require(request, access.read_check(namespace, name))
    release = await _release(request)
    prometheus, settings = request.app[PROMETHEUS], request.app[SETTINGS]
    if prometheus is None:
        return web.json_response({"charts": series.charts({}), "prometheus": "not configured"})
    queries = series.chart_queries(
        namespace=namespace, service=release["spec"]["service"], window_seconds=settings.rate_window_seconds
    )
    end = time.time()
    start, step = end - 60 * settings.chart_minutes, max(1.0, 60 * settings.chart_minutes / 180)
    try:
        answers = await asyncio.gather(
            *(prometheus.query_range(q, start=start, end=end, step=step) for q in queries.values())
        )
    except PrometheusError as failed:
        return web.json_response({"charts": series.charts({}), "prometheus": str(failed)})
    return web.json_response({"charts": series.charts(dict(zip(queries, answers, strict=True))), "prometheus": "ok"})


async def namespace_topology(request: web.Request) -> web.Response:
    namespace = request.match_info["namespace"]
    await _require(request, access.list_check(namespace))
    prometheus, settings = request.app[PROMETHEUS], request.app[SETTINGS]
    releases = await request.app[KUBE].list_releases(namespace)
    if prometheus is None:
        return web.json_response({**topology.graph([], releases), "prometheus": "not configured"})
    query = topology.topology_query(namespace=namespace, window_seconds=settings.rate_window_seconds)
    try:
        vector = await prometheus.query(query, time=time.time())
    except PrometheusError as failed:
        return web.json_response({**topology.graph([], releases), "prometheus": str(failed)})
    return web.json_response({**topology.graph(vector, releases), "prometheus": "ok"})


async def act(request: web.Request) -> web.Response:
    """One button: the plugin's patch for the verb, sent with the user's own token."""
    namespace, name, verb = (request.match_info[k] for k in ("namespace", "name", "verb"))
    await _require(request, access.patch_check(namespace, name))
    form = await json_object(request)
    release = await _release(request)
    try:
        patch = verbs.patch_for(verb, release, form)
    except PluginError as refused:
        raise error(web.HTTPBadRequest, str(refused)) from None
    session, kube = session_of(request), request.app[KUBE]
    try:
        await kube.patch_release_as(session.token, namespace=namespace, name=name, patch=patch)
    except ForbiddenError as refused:
        raise error(web.HTTPForbidden, str(refused)) from None
    except ApiError as refused:
        raise error(web.HTTPUnprocessableEntity, str(refused)) from None
    change = describe_patch(patch)
    log.info("action", user=session.user.username, namespace=namespace, release=name, change=change)
    await kube.record_action(release, user=session.user, change=change, now=datetime.now(UTC))
    return web.json_response({"applied": change})


ROUTES: tuple[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]], ...] = (
    ("GET", "/api/releases", list_releases),
    ("GET", "/api/releases/{namespace}/{name}", release_detail),
    ("GET", "/api/releases/{namespace}/{name}/metrics", release_metrics),
    ("GET", "/api/topology/{namespace}", namespace_topology),
    ("POST", "/api/releases/{namespace}/{name}/{verb}", act),
)
"""Every API endpoint besides sign-in and sign-out; the tests walk this list."""


def add_routes(router: web.UrlDispatcher) -> None:
    for method, path, handler in ROUTES:
        router.add_route(method, path, handler)
