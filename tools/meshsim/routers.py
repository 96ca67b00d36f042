"""Where the simulator's routing decisions come from: one small interface, two sources.

- :class:`VirtualServiceRouter` reads the VirtualServices and DestinationRules in the
  snapshot itself (``meshsim.routing``): the fallback when no istiod runs, and what the fast
  unit tests use.
- :class:`EnvoyRouter` routes by the Envoy configuration istiod generated for a sidecar of the
  client's namespace (``meshsim.envoy_routes``); :class:`IstiodRouter` keeps that
  configuration current with one ``istio-xds-routes`` watch per namespace, re-read on every
  push. When both could disagree, this one is right: it is what Envoy would run.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from meshsim import envoy_routes, routing, xds
from meshsim.matching import Request
from meshsim.mesh import MeshSnapshot

__all__ = ["EnvoyRouter", "IstiodRouter", "Router", "VirtualServiceRouter"]


class Router(Protocol):
    """Routes one request by some view of the mesh; started and stopped with the simulator."""

    source: str
    reads_istio_objects: bool

    def route(
        self, request: Request, snapshot: MeshSnapshot, *, rng: random.Random, version_label: str
    ) -> routing.RoutingDecision: ...

    def start(self, *, timeout: float) -> None: ...

    def stop(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class VirtualServiceRouter:
    """Istio's objects as stored, read by the simulator's own engine."""

    source = "virtualservices"
    reads_istio_objects = True

    def route(
        self, request: Request, snapshot: MeshSnapshot, *, rng: random.Random, version_label: str
    ) -> routing.RoutingDecision:
        return routing.route(request, snapshot, rng=rng, version_label=version_label)

    def start(self, *, timeout: float) -> None:
        return None

    def stop(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {}


class EnvoyRouter:
    """Routes by one Envoy configuration per client namespace (given, or kept by a subclass)."""

    source = "istiod"
    reads_istio_objects = False

    def __init__(self, configs: Mapping[str, envoy_routes.EnvoyConfig] | None = None) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, envoy_routes.EnvoyConfig] = dict(configs or {})

    def update(self, namespace: str, config: envoy_routes.EnvoyConfig) -> None:
        with self._lock:
            self._configs[namespace] = config

    def config(self, namespace: str) -> envoy_routes.EnvoyConfig | None:
        """The configuration requests from ``namespace`` are routed by now."""
        with self._lock:
            return self._configs.get(namespace)

    def route(
        self, request: Request, snapshot: MeshSnapshot, *, rng: random.Random, version_label: str
    ) -> routing.RoutingDecision:
        config = self.config(request.namespace)
        return envoy_routes.route(request, snapshot, config, rng=rng, version_label=version_label)

    def start(self, *, timeout: float) -> None:
        return None

    def stop(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            configs = dict(self._configs)
        return {
            "envoy": {
                namespace: {
                    "versions": dict(config.versions),
                    "routeConfigurations": sorted(config.route_configs),
                    "clusters": len(config.clusters),
                }
                for namespace, config in sorted(configs.items())
            }
        }


class IstiodRouter(EnvoyRouter):
    """An :class:`EnvoyRouter` fed by istiod: one ``istio-xds-routes`` watch per namespace."""

    def __init__(
        self, *, xds_address: str, namespaces: Sequence[str], binary: str | None = None
    ) -> None:
        if not namespaces:
            raise ValueError("routing by istiod needs the client namespaces (a sidecar has one)")
        super().__init__()
        self.xds_address = xds_address
        self._watches = [
            xds.XdsWatch(xds_address=xds_address, namespace=ns, binary=binary, on_push=self.update)
            for ns in namespaces
        ]

    def start(self, *, timeout: float) -> None:
        """Start every watch and wait for each namespace's first push."""
        for watch in self._watches:
            watch.start()
        for watch in self._watches:
            watch.wait_for_push(timeout=timeout)

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()

    def pushes(self, namespace: str) -> int:
        return sum(w.pushes for w in self._watches if w.namespace == namespace)

    def describe(self) -> dict[str, Any]:
        return {"istiod": self.xds_address, **super().describe()}
