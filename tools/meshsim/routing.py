"""The routing engine: where Istio would send one request. Pure and deterministic given ``rng``.

Given a request and a :class:`~meshsim.mesh.MeshSnapshot`, :func:`route` returns the version
that answers, the versions the request is mirrored to, and Envoy's response flag when the
request cannot be served:

- ``NR`` (404): the host is not a Service of the mesh, or a VirtualService exists for it and
  none of its routes matches.
- ``UH`` (503): the chosen destination has no ready pod, names a subset that no
  DestinationRule defines, or names a host that is not a Service (Envoy has no cluster to
  send to and answers 503 like "no healthy upstream").
- ``NC`` (503): only when routing by istiod's Envoy configuration (``meshsim.envoy_routes``):
  the route names a cluster that istiod did not send.
- ``FI`` (the fault's status): the route's ``fault.abort`` fired; ``fault.delay`` adds
  ``delay_ms`` to whatever answers.

Routes are tried in order and the first match wins; weighted destinations are drawn with
``rng``; there is no retry and no failover between subsets, as in Envoy.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from meshsim import headers
from meshsim.matching import Request, matches_any
from meshsim.mesh import MeshSnapshot, Service, Workload, fqdn

__all__ = [
    "FLAG_FAULT_ABORT",
    "FLAG_NO_CLUSTER",
    "FLAG_NO_HEALTHY_UPSTREAM",
    "FLAG_NO_ROUTE",
    "FLAG_OK",
    "Destination",
    "RoutingDecision",
    "inject_fault",
    "route",
]

FLAG_OK = "-"
FLAG_NO_ROUTE = "NR"
FLAG_NO_HEALTHY_UPSTREAM = "UH"
FLAG_FAULT_ABORT = "FI"
FLAG_NO_CLUSTER = "NC"

# Go duration syntax, as Istio's CRD validates fixedDelay ("5s", "100ms", "1m30s")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}

JsonDict = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a request (or its mirror copy) goes; ``workload`` is None when no pod can take it."""

    service: Service | None
    host: str
    subset: str | None
    port: int | None
    workload: Workload | None
    version: str | None

    @property
    def healthy(self) -> bool:
        return self.workload is not None


@dataclasses.dataclass(frozen=True)
class RoutingDecision:
    """The outcome of routing one request, before the chosen version answers it."""

    flag: str
    destination: Destination | None
    mirrors: tuple[Destination, ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    """Headers the mesh adds to the response (``meshsim.headers``): a sticky session's Set-Cookie."""
    virtual_service: str | None = None
    route_index: int | None = None
    fault_status: int | None = None
    delay_ms: float = 0.0

    @property
    def status_code(self) -> int | None:
        """Envoy's own reply when it does not forward; None when a workload answers."""
        if self.flag == FLAG_FAULT_ABORT:
            return self.fault_status
        if self.flag == FLAG_NO_ROUTE:
            return 404
        if self.flag in (FLAG_NO_HEALTHY_UPSTREAM, FLAG_NO_CLUSTER):
            return 503
        return None

    @property
    def served_mirrors(self) -> tuple[Destination, ...]:
        """Mirror copies that reach a pod; copies to nowhere vanish silently, as in Envoy."""
        return tuple(mirror for mirror in self.mirrors if mirror.healthy)


def _host_matches(pattern: str, host: str) -> bool:
    return pattern == host or (pattern.startswith("*") and fnmatch.fnmatchcase(host, pattern))


def _meta(obj: JsonDict) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "default")), str(metadata.get("name", ""))


def _applies_to_mesh(virtual_service: JsonDict) -> bool:
    gateways = (virtual_service.get("spec") or {}).get("gateways")
    return not gateways or "mesh" in gateways


def _find_virtual_service(snapshot: MeshSnapshot, host: str) -> JsonDict | None:
    """The oldest mesh VirtualService that names ``host`` (Istio ignores later duplicates)."""
    for virtual_service in snapshot.virtual_services:
        namespace, _ = _meta(virtual_service)
        hosts = (virtual_service.get("spec") or {}).get("hosts") or ()
        if _applies_to_mesh(virtual_service) and any(
            _host_matches(fqdn(str(h), namespace), host) for h in hosts
        ):
            return virtual_service
    return None


def _subset_labels(snapshot: MeshSnapshot, host: str, subset: str) -> Mapping[str, str] | None:
    """Labels of a subset, merging every DestinationRule for the host (first one wins)."""
    for rule in snapshot.destination_rules:
        namespace, _ = _meta(rule)
        spec = rule.get("spec") or {}
        if not _host_matches(fqdn(str(spec.get("host", "")), namespace), host):
            continue
        for candidate in spec.get("subsets") or ():
            if candidate.get("name") == subset:
                return dict(candidate.get("labels") or {})
    return None


def _pick_workload(
    snapshot: MeshSnapshot, *, namespace: str, selector: Mapping[str, str], rng: random.Random
) -> Workload | None:
    """A ready workload matching ``selector``, drawn like Envoy balances over ready pods."""
    if not selector:
        return None  # a Service without selector has no endpoints that we know of
    ready = [
        w
        for w in snapshot.workloads
        if w.namespace == namespace and w.ready_replicas > 0 and w.selected_by(selector)
    ]
    if not ready:
        return None
    return rng.choices(ready, weights=[w.ready_replicas for w in ready])[0]


def _resolve(
    snapshot: MeshSnapshot,
    destination: JsonDict,
    *,
    namespace: str,
    request_port: int | None,
    version_label: str,
    rng: random.Random,
) -> Destination:
    host = fqdn(str(destination.get("host", "")), namespace)
    subset = destination.get("subset") or None
    port_number = (destination.get("port") or {}).get("number")
    service = snapshot.service_for_host(host)
    if port_number is None:
        single_port = service is not None and len(service.ports) == 1
        port_number = service.ports[0] if service is not None and single_port else request_port
    unhealthy = Destination(
        service=service, host=host, subset=subset, port=port_number, workload=None, version=None
    )
    if service is None:
        return unhealthy
    selector = dict(service.selector)
    if subset is not None:
        labels = _subset_labels(snapshot, host, subset)
        if labels is None:
            return unhealthy
        selector.update(labels)
    workload = _pick_workload(snapshot, namespace=service.namespace, selector=selector, rng=rng)
    if workload is None:
        return unhealthy
    return dataclasses.replace(
        unhealthy, workload=workload, version=workload.labels.get(version_label)
    )


def _draw_weighted(destinations: Sequence[JsonDict], rng: random.Random) -> JsonDict | None:
    if len(destinations) == 1 and destinations[0].get("weight") is None:
        return destinations[0]  # a lone destination takes everything
    weights = [max(0, int(d.get("weight") or 0)) for d in destinations]
    if sum(weights) <= 0:
        return None
    return rng.choices(list(destinations), weights=weights)[0]


def _mirror_policies(http_route: JsonDict) -> list[tuple[JsonDict, float]]:
    """``mirror`` + ``mirrorPercentage`` and the newer ``mirrors`` list; 100% when unset."""
    policies: list[tuple[JsonDict, float]] = []
    if http_route.get("mirror"):
        percentage = (http_route.get("mirrorPercentage") or {}).get("value", 100.0)
        policies.append((http_route["mirror"], float(percentage)))
    for mirror in http_route.get("mirrors") or ():
        percentage = (mirror.get("percentage") or {}).get("value", 100.0)
        policies.append((mirror.get("destination") or {}, float(percentage)))
    return policies


def _percent(spec: JsonDict) -> float:
    """A fault's share of requests; Istio applies a fault to all requests when unset."""
    return float((spec.get("percentage") or {}).get("value", 100.0))


def _duration_ms(text: str) -> float:
    parts = _DURATION_PART.findall(text)
    return sum(float(number) * _UNIT_MS[unit] for number, unit in parts)


def inject_fault(
    decision: RoutingDecision, fault: JsonDict, *, rng: random.Random
) -> RoutingDecision:
    """Istio's fault injection: a delay before forwarding, or an abort instead of it."""
    delay = fault.get("delay") or {}
    if delay.get("fixedDelay") and rng.random() * 100.0 < _percent(delay):
        decision = dataclasses.replace(decision, delay_ms=_duration_ms(str(delay["fixedDelay"])))
    abort = fault.get("abort") or {}
    if "httpStatus" in abort and rng.random() * 100.0 < _percent(abort):
        # Envoy's fault filter answers before the router picks a host: no upstream, no mirror.
        upstream = decision.destination
        if upstream is not None:
            upstream = dataclasses.replace(upstream, workload=None, version=None)
        return dataclasses.replace(
            decision,
            flag=FLAG_FAULT_ABORT,
            fault_status=int(abort["httpStatus"]),
            destination=upstream,
            mirrors=(),
        )
    return decision


def route(
    request: Request,
    snapshot: MeshSnapshot,
    *,
    rng: random.Random,
    version_label: str = "version",
) -> RoutingDecision:
    """Route one request through the mesh described by ``snapshot``."""
    host = fqdn(request.host, request.namespace)
    service = snapshot.service_for_host(host)
    if service is None or (request.port is not None and request.port not in service.ports):
        return RoutingDecision(flag=FLAG_NO_ROUTE, destination=None)
    port = request.port if request.port is not None else (service.ports or (None,))[0]
    request = dataclasses.replace(request, port=port)
    virtual_service = _find_virtual_service(snapshot, host)
    if virtual_service is None:
        # Kubernetes' own balancing: any ready pod behind the Service.
        workload = _pick_workload(
            snapshot, namespace=service.namespace, selector=service.selector, rng=rng
        )
        destination = Destination(
            service=service,
            host=host,
            subset=None,
            port=port,
            workload=workload,
            version=workload.labels.get(version_label) if workload else None,
        )
        flag = FLAG_OK if workload else FLAG_NO_HEALTHY_UPSTREAM
        return RoutingDecision(flag=flag, destination=destination)
    vs_namespace, vs_name = _meta(virtual_service)
    routes = (virtual_service.get("spec") or {}).get("http") or ()
    for index, http_route in enumerate(routes):
        if not matches_any(http_route.get("match"), request):
            continue
        decision = RoutingDecision(
            flag=FLAG_NO_HEALTHY_UPSTREAM,
            destination=None,
            virtual_service=f"{vs_namespace}/{vs_name}",
            route_index=index,
        )
        chosen = _draw_weighted(http_route.get("route") or (), rng)
        if chosen is None:
            # redirect / directResponse routes are not simulated; no destination to draw
            return decision
        resolve = functools.partial(
            _resolve,
            snapshot,
            namespace=vs_namespace,
            request_port=port,
            version_label=version_label,
            rng=rng,
        )
        destination = resolve(chosen.get("destination") or {})
        if not destination.healthy:
            decision = dataclasses.replace(decision, destination=destination)
        else:
            # Envoy starts shadow requests only once the primary has an upstream host.
            mirrors = tuple(
                resolve(target)
                for target, percentage in _mirror_policies(http_route)
                if rng.random() * 100.0 < percentage
            )
            added = headers.istio_response_headers(destination=chosen, http_route=http_route)
            decision = dataclasses.replace(
                decision, flag=FLAG_OK, destination=destination, mirrors=mirrors, response_headers=added
            )
        return inject_fault(decision, http_route.get("fault") or {}, rng=rng)
    return RoutingDecision(
        flag=FLAG_NO_ROUTE, destination=None, virtual_service=f"{vs_namespace}/{vs_name}"
    )
