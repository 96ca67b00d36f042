"""The simulator's HTTP face: Prometheus scrapes ``/metrics``; tests and people steer the rest.

:class:`SimulatorServer` runs a simulator and serves it; the simulator knows nothing of HTTP.

    GET  /metrics                                   Istio's metrics (Prometheus text format)
    GET  /stats                                     counts per service: served, mirrored, codes
    POST /stats/reset                               zero those counts
    GET  /mesh                                      what the simulator currently reads
    POST /mesh/refresh                              read the cluster now
    POST /request                                   route one request, answer what happened
    POST /sessions/{name}                           requests from N clients that keep cookies:
                                                    {"host", "namespace", "clients", "requests",
                                                     "port", "path", "headers"} -> per client
                                                    the versions that served it and its cookies
    DELETE /sessions/{name}                         forget those clients and their cookies
    GET  /versions                                  behaviours set so far
    PUT  /versions/{namespace}/{service}/{version}  {"errorRate": 0.1,
                                                     "latencyMs": {"p50": 20, "p99": 80}}
    GET  /load                                      loads set so far
    PUT  /load/{namespace}/{service}                {"rps": 20, "port": 9080, "mix": [...], "source": "productpage-v1"}
    DELETE /load/{namespace}/{service}              stop that load
    GET  /healthz

Errors are JSON ``{"error": "..."}`` with status 400.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import prometheus_client
from aiohttp import web

from meshsim import traffic
from meshsim.running import InThread
from meshsim.simulator import Simulator

__all__ = ["SimulatorServer", "build_app", "serve"]

SIMULATOR: web.AppKey[Simulator] = web.AppKey("simulator")


def _sim(request: web.Request) -> Simulator:
    return request.app[SIMULATOR]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError as error:
        raise _bad_request(f"the body is not JSON: {error}") from error
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    body = _sim(request).metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = prometheus_client.CONTENT_TYPE_LATEST
    return response


async def stats(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).stats())


async def reset_stats(request: web.Request) -> web.Response:
    _sim(request).reset_stats()
    return web.json_response(_sim(request).stats())


async def mesh(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).describe())


async def refresh(request: web.Request) -> web.Response:
    # Reading the cluster blocks on the Kubernetes client: keep it off the event loop.
    await asyncio.to_thread(_sim(request).refresh)
    return web.json_response(_sim(request).describe())


async def single_request(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        host, namespace = str(body["host"]), str(body["namespace"])
        port = int(body["port"]) if body.get("port") is not None else None
        headers = {str(k): str(v) for k, v in (body.get("headers") or {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _bad_request(
            f"needs host, namespace; optional port, path, headers: {error}"
        ) from error
    outcome = _sim(request).request(
        host=host,
        namespace=namespace,
        port=port,
        path=str(body.get("path") or "/"),
        headers=headers,
        method=str(body.get("method") or "GET"),
    )
    return web.json_response(outcome.to_json())


async def session_round(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        host, namespace, clients = str(body["host"]), str(body["namespace"]), int(body["clients"])
        requests = int(body.get("requests", 1))
        port = int(body["port"]) if body.get("port") is not None else None
        headers = {str(k): str(v) for k, v in (body.get("headers") or {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        usage = "needs host, namespace, clients; optional requests, port, path, headers"
        raise _bad_request(f"{usage}: {error}") from error
    if not (1 <= clients <= 10_000 and 1 <= requests <= 1_000):
        raise _bad_request("clients must be within 1..10000 and requests within 1..1000")
    reports = _sim(request).session_round(
        name=request.match_info["name"], host=host, namespace=namespace, clients=clients, requests=requests,
        port=port, path=str(body.get("path") or "/"), headers=headers,
    )
    return web.json_response({"clients": [report.to_json() for report in reports]})


async def forget_sessions(request: web.Request) -> web.Response:
    _sim(request).forget_sessions(request.match_info["name"])
    return web.json_response({})


async def list_versions(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).behaviours())


async def put_version(request: web.Request) -> web.Response:
    sim, info = _sim(request), request.match_info
    key = {"namespace": info["namespace"], "service": info["service"], "version": info["version"]}
    body = await _body(request)
    try:
        behaviour = traffic.VersionBehaviour.from_json(body, base=sim.behaviour(**key))
    except traffic.SpecError as error:
        raise _bad_request(str(error)) from error
    sim.set_version_behaviour(
        **key,
        error_rate=behaviour.error_rate,
        latency_p50_ms=behaviour.latency_p50_ms,
        latency_p99_ms=behaviour.latency_p99_ms,
    )
    return web.json_response(behaviour.to_json())


async def list_loads(request: web.Request) -> web.Response:
    return web.json_response(_sim(request).loads())


async def put_load(request: web.Request) -> web.Response:
    info = request.match_info
    body = await _body(request)
    try:
        load = traffic.LoadSpec.from_json(body)
    except traffic.SpecError as error:
        raise _bad_request(str(error)) from error
    _sim(request).set_load(
        namespace=info["namespace"],
        service=info["service"],
        rps=load.rps,
        port=load.port,
        path=load.path,
        mix=load.mix,
        source=load.source,
    )
    return web.json_response(load.to_json())


async def delete_load(request: web.Request) -> web.Response:
    info = request.match_info
    _sim(request).set_load(namespace=info["namespace"], service=info["service"], rps=0)
    return web.json_response({})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app(sim: Simulator) -> web.Application:
    app = web.Application()
    app[SIMULATOR] = sim
    app.add_routes(
        [
            web.get("/metrics", metrics),
            web.get("/stats", stats),
            web.post("/stats/reset", reset_stats),
            web.get("/mesh", mesh),
            web.post("/mesh/refresh", refresh),
            web.post("/request", single_request),
            web.post("/sessions/{name}", session_round),
            web.delete("/sessions/{name}", forget_sessions),
            web.get("/versions", list_versions),
            web.put("/versions/{namespace}/{service}/{version}", put_version),
            web.get("/load", list_loads),
            web.put("/load/{namespace}/{service}", put_load),
            web.delete("/load/{namespace}/{service}", delete_load),
            web.get("/healthz", healthz),
        ]
    )
    return app


async def serve(sim: Simulator, *, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``sim`` on host:port (0: any free port); returns the runner and the port."""
    runner = web.AppRunner(build_app(sim), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, int(bound)


class SimulatorServer(InThread):
    """A simulator and its HTTP face, started and stopped together.

    ``listen`` is ``(host, port)``; port 0 picks a free port, see :attr:`port` once started.
    """

    thread_name = "meshsim"

    def __init__(self, simulator: Simulator, *, listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.simulator = simulator
        self._listen = listen
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port the control API and ``/metrics`` listen on."""
        if self._port is None:
            raise RuntimeError("the simulator's server is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._listen[0]}:{self.port}"

    async def start(self) -> None:
        """Start the simulator, then serve it; a server that cannot listen stops the simulator."""
        await self.simulator.start()
        try:
            self._runner, self._port = await serve(
                self.simulator, host=self._listen[0], port=self._listen[1]
            )
        except BaseException:
            await self.simulator.stop()
            raise

    async def stop(self) -> None:
        """Stop serving first, so nobody steers a simulator that is stopping."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.simulator.stop()
