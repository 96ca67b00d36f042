"""Routing by the Envoy configuration istiod generated: where a sidecar would send a request.

``istio-xds-routes`` (hack/xdsdump) asks istiod for what it would push to a sidecar of a
namespace and prints one JSON line per push: the RDS route configurations (protojson of
``envoy.config.route.v3.RouteConfiguration``) and every cluster with its EDS endpoints.
:func:`parse_config` turns one line into an :class:`EnvoyConfig`; :func:`route` routes one
request by it as Envoy's router would. Pure and deterministic given ``rng``.

What Envoy does, in order: the route configuration named after the port (the outbound HTTP
listener's RDS name), the virtual host whose domains match the authority, the first route
whose match holds (``meshsim.envoy_match``), the route's fault filter config, its cluster or
weighted clusters, its request mirror policies, then one healthy endpoint of the cluster.
Flags and codes are those of ``meshsim.routing``: ``NR`` 404 (no route or virtual host),
``NC`` 503 (a cluster istiod did not send), ``UH`` 503 (no healthy endpoint), ``FI``.

An endpoint names its workload in Istio's telemetry metadata; the Deployment of that name in
the simulator's snapshot gives its labels (and so the version). Nothing here reads a
VirtualService or a DestinationRule.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any

from meshsim import headers
from meshsim.envoy_match import route_matches
from meshsim.matching import Request
from meshsim.mesh import MeshSnapshot, Workload, fqdn
from meshsim.routing import (
    FLAG_NO_CLUSTER,
    FLAG_NO_HEALTHY_UPSTREAM,
    FLAG_NO_ROUTE,
    FLAG_OK,
    Destination,
    RoutingDecision,
    inject_fault,
)

__all__ = [
    "ClusterName",
    "Endpoint",
    "EnvoyCluster",
    "EnvoyConfig",
    "RouteConfig",
    "TcpRoute",
    "mirror_policies",
    "parse_cluster_name",
    "parse_config",
    "route",
    "weighted_clusters",
]

JsonDict = Mapping[str, Any]

FAULT_FILTER = "envoy.filters.http.fault"
# FractionalPercent denominators; protojson leaves out the default (HUNDRED)
_DENOMINATORS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}
_HEALTHY = ("HEALTHY", "UNKNOWN")  # Envoy routes to UNKNOWN endpoints too


@dataclasses.dataclass(frozen=True)
class ClusterName:
    """``outbound|9080|v2|reviews.bookinfo.svc.cluster.local``, taken apart."""

    direction: str
    port: int | None
    subset: str | None
    host: str


def parse_cluster_name(name: str) -> ClusterName:
    parts = name.split("|")
    if len(parts) != 4:
        return ClusterName(direction="", port=None, subset=None, host=name)
    direction, port, subset, host = parts
    number = int(port) if port.isdigit() else None
    return ClusterName(direction=direction, port=number, subset=subset or None, host=host)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One EDS endpoint; ``workload`` is Istio's ``name;namespace;service;revision;cluster``."""

    address: str
    port: int
    health: str
    weight: int
    workload: str = ""

    @property
    def healthy(self) -> bool:
        return self.health in _HEALTHY

    @property
    def workload_name(self) -> str:
        return self.workload.split(";")[0]

    @property
    def workload_namespace(self) -> str:
        parts = self.workload.split(";")
        return parts[1] if len(parts) > 1 else ""

    @property
    def revision(self) -> str:
        parts = self.workload.split(";")
        return parts[3] if len(parts) > 3 else ""


@dataclasses.dataclass(frozen=True)
class EnvoyCluster:
    name: str
    type: str
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def healthy_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.healthy and e.weight > 0)


@dataclasses.dataclass(frozen=True)
class RouteConfig:
    """One RouteConfiguration, with its virtual hosts indexed by domain as Envoy does."""

    name: str
    virtual_hosts: tuple[JsonDict, ...]
    ignore_port: bool
    exact: Mapping[str, int]
    suffixes: tuple[tuple[str, int], ...]  # "*.example.com" -> ".example.com", longest first
    prefixes: tuple[tuple[str, int], ...]  # "example.*" -> "example.", longest first
    default: int | None

    @classmethod
    def from_json(cls, body: JsonDict) -> RouteConfig:
        hosts = tuple(body.get("virtualHosts") or ())
        exact: dict[str, int] = {}
        suffixes: list[tuple[str, int]] = []
        prefixes: list[tuple[str, int]] = []
        default = None
        for index, vhost in enumerate(hosts):
            for domain in (str(d).lower() for d in vhost.get("domains") or ()):
                if domain == "*":
                    default = index if default is None else default
                elif domain.startswith("*"):
                    suffixes.append((domain[1:], index))
                elif domain.endswith("*"):
                    prefixes.append((domain[:-1], index))
                else:
                    exact.setdefault(domain, index)
        return cls(
            name=str(body.get("name", "")),
            virtual_hosts=hosts,
            ignore_port=bool(body.get("ignorePortInHostMatching")),
            exact=exact,
            suffixes=tuple(sorted(suffixes, key=lambda item: -len(item[0]))),
            prefixes=tuple(sorted(prefixes, key=lambda item: -len(item[0]))),
            default=default,
        )

    def virtual_host(self, authority: str) -> JsonDict | None:
        """The virtual host Envoy picks for ``authority``: exact, ``*.x``, ``x.*``, then ``*``."""
        host = authority.lower()
        if self.ignore_port and ":" in host:
            host = host.rsplit(":", 1)[0]
        index = self.exact.get(host, self.exact.get(host.rstrip(".")))
        if index is not None:
            return self.virtual_hosts[index]
        for suffix, index in self.suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                return self.virtual_hosts[index]
        for prefix, index in self.prefixes:
            if host.startswith(prefix) and len(host) > len(prefix):
                return self.virtual_hosts[index]
        return self.virtual_hosts[self.default] if self.default is not None else None


@dataclasses.dataclass(frozen=True)
class TcpRoute:
    """A service listener's tcp_proxy: where its connections go (TCP routes are not in RDS)."""

    listener: str
    port: int
    clusters: tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True)
class EnvoyConfig:
    """What istiod pushed to one sidecar, at one moment."""

    node: str = ""
    versions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    route_configs: Mapping[str, RouteConfig] = dataclasses.field(default_factory=dict)
    clusters: Mapping[str, EnvoyCluster] = dataclasses.field(default_factory=dict)
    tcp_routes: tuple[TcpRoute, ...] = ()

    def virtual_host(self, *, host: str, port: int) -> JsonDict | None:
        config = self.route_configs.get(str(port))
        return config.virtual_host(host) if config is not None else None


def _endpoint(body: JsonDict) -> Endpoint:
    return Endpoint(
        address=str(body.get("address", "")),
        port=int(body.get("port") or 0),
        health=str(body.get("health", "UNKNOWN")),
        weight=int(body.get("weight", 1)),
        workload=str(body.get("workload", "")),
    )


def parse_config(body: JsonDict) -> EnvoyConfig:
    """One line of ``istio-xds-routes``, decoded from JSON."""
    configs = (RouteConfig.from_json(rc) for rc in body.get("routeConfigurations") or ())
    clusters = (
        EnvoyCluster(
            name=str(c["name"]),
            type=str(c.get("type", "")),
            endpoints=tuple(_endpoint(e) for e in c.get("endpoints") or ()),
        )
        for c in body.get("clusters") or ()
    )
    tcp = (
        TcpRoute(
            listener=str(t.get("listener", "")),
            port=int(t.get("port") or 0),
            clusters=tuple((str(c["name"]), int(c.get("weight") or 0)) for c in t.get("clusters") or ()),
        )
        for t in body.get("tcpRoutes") or ()
    )
    return EnvoyConfig(
        node=str(body.get("node", "")),
        versions=dict(body.get("versions") or {}),
        route_configs={rc.name: rc for rc in configs},
        clusters={c.name: c for c in clusters},
        tcp_routes=tuple(tcp),
    )


# -- route actions ----------------------------------------------------------------------------


def _percent(fraction: JsonDict | None) -> float:
    """A FractionalPercent as a percentage; unset means all requests."""
    if fraction is None:
        return 100.0
    denominator = _DENOMINATORS.get(str(fraction.get("denominator", "HUNDRED")), 100)
    return 100.0 * int(fraction.get("numerator", 0)) / denominator


def weighted_clusters(action: JsonDict) -> list[tuple[str, int]]:
    """(cluster, weight) of a RouteAction: one cluster at 100, or its weighted clusters."""
    if action.get("cluster"):
        return [(str(action["cluster"]), 100)]
    clusters = (action.get("weightedClusters") or {}).get("clusters") or ()
    return [(str(c.get("name", "")), int(c.get("weight") or 0)) for c in clusters]


def mirror_policies(action: JsonDict) -> list[tuple[str, float]]:
    """(cluster, percent) of a RouteAction's request mirror policies."""
    return [
        (str(p.get("cluster", "")), _percent((p.get("runtimeFraction") or {}).get("defaultValue")))
        for p in action.get("requestMirrorPolicies") or ()
    ]


def _istio_fault(route_entry: JsonDict) -> JsonDict:
    """The route's HTTPFault in the VirtualService's shape, for ``routing.inject_fault``."""
    fault = (route_entry.get("typedPerFilterConfig") or {}).get(FAULT_FILTER) or {}
    delay, abort = fault.get("delay") or {}, fault.get("abort") or {}
    istio: dict[str, Any] = {}
    if delay.get("fixedDelay"):
        percent = _percent(delay.get("percentage"))
        istio["delay"] = {"fixedDelay": delay["fixedDelay"], "percentage": {"value": percent}}
    if "httpStatus" in abort:
        percent = _percent(abort.get("percentage"))
        istio["abort"] = {"httpStatus": abort["httpStatus"], "percentage": {"value": percent}}
    return istio


def _virtual_service(route_entry: JsonDict) -> str | None:
    """``namespace/name`` from Istio's route metadata (``.../namespaces/NS/virtual-service/NAME``)."""
    metadata = ((route_entry.get("metadata") or {}).get("filterMetadata") or {}).get("istio") or {}
    path = str(metadata.get("config", ""))
    parts = path.split("/")
    if "namespaces" in parts and len(parts) >= parts.index("namespaces") + 4:
        at = parts.index("namespaces")
        return f"{parts[at + 1]}/{parts[at + 3]}"
    return None


def _workload(snapshot: MeshSnapshot, endpoint: Endpoint, version_label: str) -> Workload:
    for workload in snapshot.workloads:
        same_namespace = workload.namespace == endpoint.workload_namespace
        if same_namespace and workload.name == endpoint.workload_name:
            return workload
    # Not (yet) in the snapshot: what the endpoint's metadata says is all there is.
    labels = {version_label: endpoint.revision} if endpoint.revision else {}
    return Workload(endpoint.workload_namespace, endpoint.workload_name, labels, ready_replicas=1)


def _resolve(
    cluster_name: str,
    *,
    snapshot: MeshSnapshot,
    config: EnvoyConfig,
    rng: random.Random,
    version_label: str,
) -> tuple[Destination, str]:
    """The destination of one cluster and the flag: OK, NC (no such cluster) or UH (no endpoint)."""
    parsed = parse_cluster_name(cluster_name)
    destination = Destination(
        service=snapshot.service_for_host(parsed.host), host=parsed.host, subset=parsed.subset,
        port=parsed.port, workload=None, version=None,
    )
    cluster = config.clusters.get(cluster_name)
    if cluster is None:
        return destination, FLAG_NO_CLUSTER
    endpoints = cluster.healthy_endpoints
    if not endpoints:
        return destination, FLAG_NO_HEALTHY_UPSTREAM
    endpoint = rng.choices(endpoints, weights=[e.weight for e in endpoints])[0]
    workload = _workload(snapshot, endpoint, version_label)
    version = workload.labels.get(version_label)
    return dataclasses.replace(destination, workload=workload, version=version), FLAG_OK


def _draw(clusters: Sequence[tuple[str, int]], rng: random.Random) -> str | None:
    weights = [max(0, w) for _, w in clusters]
    if sum(weights) <= 0:
        return None
    return rng.choices([name for name, _ in clusters], weights=weights)[0]


def _act(
    route_entry: JsonDict, index: int, *, snapshot: MeshSnapshot, config: EnvoyConfig,
    rng: random.Random, version_label: str, vhost: JsonDict | None = None,
) -> RoutingDecision:
    """What Envoy does once ``route_entry`` matched: fault, cluster, mirrors."""
    decision = RoutingDecision(
        flag=FLAG_NO_HEALTHY_UPSTREAM, destination=None,
        virtual_service=_virtual_service(route_entry), route_index=index,
    )
    action = route_entry.get("route") or {}
    chosen = _draw(weighted_clusters(action), rng)
    if chosen is None:
        return decision  # redirect / direct_response routes are not simulated
    resolve = functools.partial(
        _resolve, snapshot=snapshot, config=config, rng=rng, version_label=version_label
    )
    destination, flag = resolve(chosen)
    decision = dataclasses.replace(decision, flag=flag, destination=destination)
    if flag == FLAG_OK:
        # Envoy starts shadow requests only once the primary has an upstream host.
        mirrors = tuple(
            resolve(name)[0]
            for name, percent in mirror_policies(action)
            if rng.random() * 100.0 < percent
        )
        added = headers.envoy_response_headers(cluster=chosen, action=action, route_entry=route_entry, vhost=vhost)
        decision = dataclasses.replace(decision, mirrors=mirrors, response_headers=added)
    return inject_fault(decision, _istio_fault(route_entry), rng=rng)


def route(
    request: Request,
    snapshot: MeshSnapshot,
    config: EnvoyConfig | None,
    *,
    rng: random.Random,
    version_label: str = "version",
) -> RoutingDecision:
    """Route one request from a sidecar whose configuration is ``config``."""
    service = snapshot.service_for_host(fqdn(request.host, request.namespace))
    unknown_port = service is not None and request.port is not None and request.port not in service.ports
    if config is None or service is None or unknown_port:
        return RoutingDecision(flag=FLAG_NO_ROUTE, destination=None)
    port = request.port if request.port is not None else (service.ports or (0,))[0]
    request = dataclasses.replace(request, port=port)
    vhost = config.virtual_host(host=request.header("host") or request.host, port=port)
    if vhost is None or vhost.get("name") == "allow_any":
        return RoutingDecision(flag=FLAG_NO_ROUTE, destination=None)  # passthrough is not simulated
    for index, route_entry in enumerate(vhost.get("routes") or ()):
        if route_matches(route_entry.get("match") or {}, request):
            return _act(
                route_entry,
                index,
                snapshot=snapshot,
                config=config,
                rng=rng,
                version_label=version_label,
                vhost=vhost,
            )
    return RoutingDecision(flag=FLAG_NO_ROUTE, destination=None)
