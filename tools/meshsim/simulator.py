"""The simulator: routes synthetic and single requests, draws answers, counts and exports them.

All mutable state sits behind one lock, so the library API can be called from a test's thread
while the simulator's own event loop (in-process via :meth:`Simulator.start`, or in a thread
via :meth:`Simulator.start_in_thread`) polls the cluster, generates load and serves HTTP.
Traffic is simulated in time steps (``tick`` seconds): each step draws a Poisson number of
requests per loaded service; no real HTTP request is made per synthetic request.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from meshsim import metrics, routers, sessions, traffic
from meshsim import stats as stats_
from meshsim.matching import Request
from meshsim.mesh import MeshSnapshot, fqdn
from meshsim.routing import FLAG_OK
from meshsim.running import InThread

__all__ = ["Simulator"]

log = logging.getLogger(__name__)

SOURCE_WORKLOAD = "meshsim-client"
# Where a request's source labels carry its client Deployment's name (not a pod label).
SOURCE_WORKLOAD_LABEL = "meshsim/workload"
# Envoy answers 404/503 itself within a fraction of a millisecond.
LOCAL_REPLY_MS = 0.2


class Simulator(InThread):
    """A simulated Istio data plane over the given namespaces of a cluster.

    ``api_client`` (a ``kubernetes.client.ApiClient``) is where Services and Deployments (and,
    without istiod, VirtualServices and DestinationRules) are read from; ``snapshot_source``
    replaces it with any callable returning a :class:`~meshsim.mesh.MeshSnapshot` (tests use a
    fixed one). ``istiod`` is istiod's plaintext xDS address: requests are then routed by the
    Envoy configuration istiod generates for a sidecar of each namespace, re-read on every
    push (``meshsim.routers.IstiodRouter``); without it the simulator reads the
    VirtualServices itself. ``router`` replaces both (tests). It knows nothing of HTTP: its
    control API and ``/metrics`` are served by :class:`meshsim.server.SimulatorServer`.
    """

    thread_name = "meshsim"

    def __init__(
        self,
        api_client: Any = None,
        *,
        namespaces: Sequence[str] = (),
        seed: int | None = None,
        poll_interval: float = 0.5,
        tick: float = 0.1,
        version_label: str = "version",
        snapshot_source: Callable[[], MeshSnapshot] | None = None,
        istiod: str | None = None,
        xds_routes_binary: str | None = None,
        router: routers.Router | None = None,
    ) -> None:
        if router is None and istiod is not None:
            router = routers.IstiodRouter(
                xds_address=istiod, namespaces=namespaces, binary=xds_routes_binary
            )
        self.router: routers.Router = router or routers.VirtualServiceRouter()
        if snapshot_source is None:
            if api_client is None:
                raise ValueError("a Simulator needs an api_client or a snapshot_source")
            from meshsim.cluster import ClusterReader  # the Kubernetes client only when used

            snapshot_source = ClusterReader(
                api_client, namespaces=namespaces, istio_objects=self.router.reads_istio_objects
            ).read
        self._source = snapshot_source
        self._poll_interval = poll_interval
        self._tick = tick
        self._version_label = version_label
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._snapshot = MeshSnapshot()
        self._behaviours: dict[tuple[str, str, str], traffic.VersionBehaviour] = {}
        self._loads: dict[tuple[str, str], traffic.LoadSpec] = {}
        self._stats: dict[str, stats_.ServiceStats] = collections.defaultdict(stats_.ServiceStats)
        self._sessions: dict[str, sessions.SessionGroup] = {}
        self.metrics = metrics.IstioMetrics()
        self._tasks: list[asyncio.Task[None]] = []

    # --- state the user sets -------------------------------------------------------------

    def set_version_behaviour(
        self,
        *,
        namespace: str,
        service: str,
        version: str,
        error_rate: float = 0.0,
        latency_p50_ms: float = 10.0,
        latency_p99_ms: float = 50.0,
    ) -> None:
        """How ``version`` of ``service`` answers from now on (errors are HTTP 500)."""
        behaviour = traffic.VersionBehaviour(error_rate, latency_p50_ms, latency_p99_ms)
        with self._lock:
            self._behaviours[namespace, service, version] = behaviour

    def behaviour(self, *, namespace: str, service: str, version: str) -> traffic.VersionBehaviour:
        with self._lock:
            return self._behaviours.get((namespace, service, version), traffic.DEFAULT_BEHAVIOUR)

    def behaviours(self) -> dict[str, Any]:
        with self._lock:
            return {"/".join(key): b.to_json() for key, b in sorted(self._behaviours.items())}

    def set_load(
        self,
        *,
        namespace: str,
        service: str,
        rps: float,
        mix: Iterable[traffic.RequestTemplate | Mapping[str, Any]] = (),
        port: int | None = None,
        path: str = "/",
        source: str = "",
    ) -> None:
        """Send ``rps`` synthetic requests per second to ``service``; ``rps=0`` stops them.

        ``source`` names the client Deployment of the namespace (``productpage-v1``): the
        requests carry its pod labels, as its sidecar would report them.

        ``mix`` entries are :class:`~meshsim.traffic.RequestTemplate` or their JSON form,
        e.g. ``{"fraction": 0.1, "headers": {"end-user": "jason"}}``.
        """
        templates = tuple(
            t if isinstance(t, traffic.RequestTemplate) else traffic.RequestTemplate.from_json(t)
            for t in mix
        )
        load = traffic.LoadSpec(rps=rps, port=port, path=path, mix=templates, source=source)
        with self._lock:
            if load.rps > 0:
                self._loads[namespace, service] = load
            else:
                self._loads.pop((namespace, service), None)

    def loads(self) -> dict[str, Any]:
        with self._lock:
            return {"/".join(key): load.to_json() for key, load in sorted(self._loads.items())}

    # --- the mesh ------------------------------------------------------------------------

    def refresh(self) -> MeshSnapshot:
        """Read the cluster now (blocking) and route by what it says from here on."""
        snapshot = self._source()
        with self._lock:
            self._snapshot = snapshot
        return snapshot

    @property
    def snapshot(self) -> MeshSnapshot:
        with self._lock:
            return self._snapshot

    def describe(self) -> dict[str, Any]:
        """What the simulator currently sees, for people debugging a route."""
        snapshot = self.snapshot
        names = [
            "{namespace}/{name}".format(**(obj.get("metadata") or {}))
            for obj in snapshot.virtual_services
        ]
        rules = [
            "{namespace}/{name}".format(**(obj.get("metadata") or {}))
            for obj in snapshot.destination_rules
        ]
        return {
            "routingSource": self.router.source,
            **self.router.describe(),
            "virtualServices": names,
            "destinationRules": rules,
            "services": [f"{s.namespace}/{s.name}" for s in snapshot.services],
            "workloads": [
                {
                    "workload": f"{w.namespace}/{w.name}",
                    "version": w.labels.get(self._version_label),
                    "readyReplicas": w.ready_replicas,
                }
                for w in snapshot.workloads
            ],
        }

    # --- requests ------------------------------------------------------------------------

    def request(
        self,
        *,
        host: str,
        namespace: str,
        port: int | None = None,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
    ) -> stats_.RequestOutcome:
        """Send one request through the mesh, as a client in ``namespace`` would."""
        req = Request(
            host=host,
            namespace=namespace,
            port=port,
            path=path,
            headers=dict(headers or {}),
            method=method,
            source_labels={"app": SOURCE_WORKLOAD},
        )
        with self._lock:
            return self._serve(req)

    def session_round(
        self,
        *,
        name: str,
        host: str,
        namespace: str,
        clients: int,
        requests: int = 1,
        port: int | None = None,
        path: str = "/",
        headers: Mapping[str, str] | None = None,
    ) -> list[sessions.ClientReport]:
        """``requests`` requests from each of ``clients`` clients that keep cookies (``meshsim.sessions``).

        The clients of group ``name`` keep their cookies between calls, until :meth:`forget_sessions`.
        """

        def send(extra: Mapping[str, str]) -> tuple[str | None, int, tuple[tuple[str, str], ...]]:
            req = Request(host=host, namespace=namespace, port=port, path=path, headers=dict(extra),
                          source_labels={"app": SOURCE_WORKLOAD})
            outcome = self._serve(req)
            return outcome.version, outcome.code, outcome.response_headers

        with self._lock:
            group = self._sessions.setdefault(name, sessions.SessionGroup())
            return group.round(send, clients=clients, requests=requests, headers=dict(headers or {}))

    def forget_sessions(self, name: str) -> None:
        """Drop the clients of group ``name`` and their cookies."""
        with self._lock:
            self._sessions.pop(name, None)

    def _serve(self, req: Request) -> stats_.RequestOutcome:
        decision = self.router.route(
            req, self._snapshot, rng=self._rng, version_label=self._version_label
        )
        stats = self._stats[stats_.stats_key(req, decision)]
        stats.requests += 1
        destination = decision.destination
        observed = metrics.Observation(
            source_workload=req.source_labels.get(SOURCE_WORKLOAD_LABEL, SOURCE_WORKLOAD),
            source_labels=req.source_labels,
            source_namespace=req.namespace,
            service=destination.service if destination else None,
            host=destination.host if destination else fqdn(req.host, req.namespace),
            workload=destination.workload if destination else None,
            version=destination.version if destination else None,
            code=decision.status_code or 0,
            flags=decision.flag,
            latency_ms=LOCAL_REPLY_MS + decision.delay_ms,
        )
        if decision.flag != FLAG_OK or destination is None or destination.workload is None:
            stats.responses[str(observed.code)] += 1
            stats.flags[decision.flag] += 1
            self.metrics.record(observed, reporter="source")
            return stats_.RequestOutcome(
                None, observed.code, observed.latency_ms, decision.flag, None
            )
        version = destination.version or metrics.UNKNOWN
        code, latency = self._answer(observed, version)
        latency += decision.delay_ms  # an injected delay comes before the upstream call
        observed = dataclasses.replace(observed, code=code, latency_ms=latency)
        stats.served[version] += 1
        stats.responses[str(code)] += 1
        if code >= 500:
            stats.errors[version] += 1
        self.metrics.record(observed, reporter="destination")
        self.metrics.record(observed, reporter="source")
        mirrored = []
        for mirror in decision.served_mirrors:
            mirror_version = mirror.version or metrics.UNKNOWN
            copy = dataclasses.replace(
                observed,
                service=mirror.service,
                host=mirror.host,
                workload=mirror.workload,
                version=mirror.version,
            )
            mirror_code, mirror_latency = self._answer(copy, mirror_version)
            copy = dataclasses.replace(copy, code=mirror_code, latency_ms=mirror_latency)
            self.metrics.record(copy, reporter="destination")
            stats.mirrored[mirror_version] += 1
            mirrored.append(mirror_version)
        return stats_.RequestOutcome(
            version, code, latency, FLAG_OK, destination.workload.name, tuple(mirrored),
            decision.response_headers,
        )

    def _source_labels(self, namespace: str, source: str) -> dict[str, str]:
        """The pod labels of client Deployment ``source`` (and its name, for the metrics)."""
        for workload in self._snapshot.workloads if source else ():
            if (workload.namespace, workload.name) == (namespace, source):
                return {**workload.labels, SOURCE_WORKLOAD_LABEL: source}
        return {"app": SOURCE_WORKLOAD}

    def _answer(self, observed: metrics.Observation, version: str) -> tuple[int, float]:
        service = observed.service
        key = (service.namespace, service.name, version) if service else ("", "", version)
        behaviour = self._behaviours.get(key, traffic.DEFAULT_BEHAVIOUR)
        return behaviour.draw(self._rng)

    def step(self, seconds: float | None = None) -> int:
        """Simulate ``seconds`` (default: one tick) of the load; returns how many requests."""
        dt = self._tick if seconds is None else seconds
        sent = 0
        with self._lock:
            for (namespace, service), load in list(self._loads.items()):
                for _ in range(traffic.draw_poisson(load.rps * dt, self._rng)):
                    path, headers = load.draw(self._rng)
                    req = Request(
                        host=service,
                        namespace=namespace,
                        port=load.port,
                        path=path,
                        headers=headers,
                        source_labels=self._source_labels(namespace, load.source),
                    )
                    self._serve(req)
                    sent += 1
        return sent

    def stats(self) -> dict[str, Any]:
        """Counts since start (or the last reset), keyed by ``namespace/service``."""
        with self._lock:
            return {"services": {key: s.to_json() for key, s in sorted(self._stats.items())}}

    def reset_stats(self) -> None:
        """Zero the counts of :meth:`stats`; Prometheus counters keep counting, as counters do."""
        with self._lock:
            self._stats.clear()

    # --- running -------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the cluster once, then poll and generate load in this event loop.

        Routing by istiod waits for istiod's first push to every namespace before it returns.
        """
        await asyncio.to_thread(self.refresh)
        try:
            await asyncio.to_thread(self.router.start, timeout=30.0)
        except BaseException:
            await asyncio.to_thread(self.router.stop)
            raise
        self._tasks = [
            asyncio.create_task(self._poll_forever(), name="meshsim-poll"),
            asyncio.create_task(self._generate_forever(), name="meshsim-load"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.to_thread(self.router.stop)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # keep routing by the last snapshot
                log.exception("reading the cluster failed; routing by the last snapshot")

    async def _generate_forever(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            # Steps follow the wall clock so the rate holds when the loop runs late; a long
            # stall (a suspended process) is not made up for in one burst.
            self.step(min(now - last, 1.0))
            last = now
