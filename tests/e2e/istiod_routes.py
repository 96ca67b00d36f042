"""What istiod generated for a released host, held against what the release's status says.

istiod translates the VirtualServices and DestinationRules the operator writes into the Envoy
routes a sidecar runs. :func:`istiod_config` asks istiod for them through
``.bin/istio-xds-routes`` (as a sidecar of the namespace); :func:`assert_istiod_routes_say_status`
waits until, for every HTTP port of the released Service, istiod's routes say what
``status.traffic`` says: the catch-all route's weighted clusters carry the status' weights,
match rules send their requests to the canary's cluster, the mirror policy copies
``mirrorPercent`` to the canary, and every cluster given weight exists, has a healthy endpoint
and is on the route's own port (on a TCP port: the listener's ``tcp_proxy`` carries the
weights, since TCP routes are not in RDS). Given the test's mesh simulator, it also waits until the
simulator routes by such a push, so the requests a test sends next are routed by istiod's
output. Where the simulator's own reading of a VirtualService and istiod's translation could
disagree, istiod's is what is asserted and routed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from devcluster import Cluster
from meshsim import envoy_routes, xds
from meshsim.envoy_routes import EnvoyConfig
from meshsim.mesh import fqdn
from meshsim.routers import EnvoyRouter
from meshsim.simulator import Simulator

from tests.e2e.helpers import get, wait_for

__all__ = [
    "HostRoute",
    "RoutesDisagreeError",
    "assert_istiod_routes_say_status",
    "gateway_weights",
    "host_routes",
    "istiod_config",
    "tcp_weights",
]


class RoutesDisagreeError(AssertionError):
    """istiod's routes for the released host and the release's status never came to agree."""


def istiod_config(cluster: Cluster, namespace: str) -> EnvoyConfig:
    """What istiod pushes right now to a sidecar in ``namespace``."""
    return xds.fetch_config(
        xds_address=cluster.istiod.grpc_address,
        namespace=namespace,
        binary=str(cluster.bin_dir / xds.BINARY),
    )


def gateway_weights(cluster: Cluster, namespace: str, *, host: str, port: int = 80) -> dict[str, int] | None:
    """What istiod tells an ingress gateway (labels istio=ingressgateway) to do with ``host``'s
    requests on ``port``: subset -> weight of each route's weighted clusters (None: no such route)."""
    config = xds.fetch_config(
        xds_address=cluster.istiod.grpc_address, namespace=namespace,
        binary=str(cluster.bin_dir / xds.BINARY), gateway_labels={"istio": "ingressgateway"},
    )
    route_config = config.route_configs.get(f"http.{port}")
    vhost = route_config.virtual_host(host) if route_config is not None else None
    if vhost is None:
        return None
    weights: dict[str, int] = {}
    for entry in vhost.get("routes") or ():
        for name, weight in envoy_routes.weighted_clusters(entry.get("route") or {}):
            if weight > 0:
                subset = envoy_routes.parse_cluster_name(name).subset or ""
                weights[subset] = weights.get(subset, 0) + weight
    return weights


@dataclasses.dataclass(frozen=True)
class HostRoute:
    """One Envoy route of a host's virtual host, reduced to what a release changes."""

    name: str
    match: dict[str, Any]  # the RouteMatch as istiod wrote it
    conditions: bool  # matches on more than "every path"
    weights: dict[str, int]  # subset -> weight, zero weights left out
    mirrors: dict[str, float]  # subset -> percent
    clusters: tuple[str, ...]


def _has_conditions(match: dict[str, Any]) -> bool:
    return bool(match.get("headers") or match.get("queryParameters")) or match.get("prefix") != "/"


def _host_route(entry: dict[str, Any]) -> HostRoute:
    action = entry.get("route") or {}
    clusters = envoy_routes.weighted_clusters(action)
    weights: dict[str, int] = {}
    for name, weight in clusters:
        if weight > 0:
            subset = envoy_routes.parse_cluster_name(name).subset or ""
            weights[subset] = weights.get(subset, 0) + weight
    mirrors = {
        envoy_routes.parse_cluster_name(name).subset or "": percent
        for name, percent in envoy_routes.mirror_policies(action)
    }
    return HostRoute(
        name=str(entry.get("name", "")),
        match=dict(entry.get("match") or {}),
        conditions=_has_conditions(entry.get("match") or {}),
        weights=weights,
        mirrors=mirrors,
        clusters=tuple(name for name, _ in clusters),
    )


def host_routes(config: EnvoyConfig, *, host: str, port: int) -> list[HostRoute] | None:
    """The routes of ``host``'s virtual host on ``port`` that send to ``host``; None: no HTTP routes."""
    vhost = config.virtual_host(host=host, port=port)
    if vhost is None or vhost.get("name") == "allow_any":
        return None
    routes = [_host_route(entry) for entry in vhost.get("routes") or ()]
    # An adopted VirtualService may also route other hosts from this virtual host (a /ratings
    # prefix to ratings, say): only the routes to the released host are the release's.
    return [
        r for r in routes
        if r.clusters and all(envoy_routes.parse_cluster_name(c).host == host for c in r.clusters)
    ]


def _expected(release: dict[str, Any]) -> tuple[dict[str, int], str, dict[str, Any]]:
    spec, traffic = release["spec"], (release.get("status") or {}).get("traffic") or {}
    stable, canary = spec["stable"]["version"], spec["canary"]["version"]
    weights = {stable: int(traffic.get("stable", 0)), canary: int(traffic.get("canary", 0))}
    return {v: w for v, w in weights.items() if w > 0}, canary, traffic


def _cluster_problems(config: EnvoyConfig, route: HostRoute, port: int) -> list[str]:
    problems = []
    for name in route.clusters:
        parsed, cluster = envoy_routes.parse_cluster_name(name), config.clusters.get(name)
        if parsed.port != port:
            problems.append(f"{name} is not on port {port}")
        if parsed.subset in route.weights and (cluster is None or not cluster.healthy_endpoints):
            problems.append(f"{name} has weight but no healthy endpoint in istiod's EDS")
    return problems


def _port_problems(config: EnvoyConfig, release: dict[str, Any], *, host: str, port: int) -> list[str]:
    routes = host_routes(config, host=host, port=port)
    if not routes:
        return [f"no routes to {host} on {port}"]
    weights, canary, traffic = _expected(release)
    *earlier, last = routes
    problems = [f"{last.name}: weights {last.weights} != status {weights}"] if last.weights != weights else []
    matched = any(r.conditions and r.weights == {canary: 100} for r in earlier)
    if matched != bool(traffic.get("matchedToCanary")):
        problems.append(f"match routes to {canary}: {matched}, status says {traffic.get('matchedToCanary')}")
    mirror = traffic.get("mirrorPercent") or 0
    if last.mirrors != ({canary: float(mirror)} if mirror else {}):
        problems.append(f"{last.name}: mirrors {last.mirrors} != status mirrorPercent {mirror}")
    for route in routes:
        problems += _cluster_problems(config, route, port)
    return problems


def tcp_weights(config: EnvoyConfig, *, host: str, port: int) -> dict[str, int] | None:
    """subset -> weight of the listener's tcp_proxy for ``host`` on ``port``; None: none."""
    for route in config.tcp_routes:
        hosts = {envoy_routes.parse_cluster_name(name).host for name, _ in route.clusters}
        if route.port == port and hosts == {host}:
            return {
                envoy_routes.parse_cluster_name(name).subset or "": weight
                for name, weight in route.clusters
                if weight > 0
            }
    return None


def _tcp_problems(config: EnvoyConfig, release: dict[str, Any], *, host: str, port: int) -> list[str]:
    weights, tcp = _expected(release)[0], tcp_weights(config, host=host, port=port)
    return [] if tcp == weights else [f"tcp_proxy weights {tcp} != status {weights}"]


def _problems(config: EnvoyConfig | None, release: dict[str, Any], service: dict[str, Any]) -> list[str]:
    if config is None:
        return ["no configuration from istiod yet"]
    host = fqdn(release["spec"]["service"], release["metadata"]["namespace"])
    ports = [int(p["port"]) for p in service["spec"]["ports"]]
    http = [p for p in ports if host_routes(config, host=host, port=p) is not None]
    if not http:
        return [f"istiod generated no HTTP routes for {host}"]
    problems = [f"port {p}: {m}" for p in http for m in _port_problems(config, release, host=host, port=p)]
    tcp = [p for p in ports if p not in http]
    return problems + [f"port {p}: {m}" for p in tcp for m in _tcp_problems(config, release, host=host, port=p)]


def assert_istiod_routes_say_status(
    cluster: Cluster, namespace: str, release: str = "reviews", *, mesh: Simulator | None = None,
    timeout: float = 30,
) -> EnvoyConfig:
    """Wait until istiod's routes for the released host say what the status says; returns them."""
    seen: dict[str, Any] = {}

    def agree(config_of: Any) -> EnvoyConfig | None:
        body = get(cluster, "canaryrelease", release, namespace)
        assert body is not None, f"no CanaryRelease {release}"
        service = get(cluster, "service", body["spec"]["service"], namespace)
        assert service is not None
        config = config_of()
        seen.update(problems=_problems(config, body, service), status=(body.get("status") or {}).get("traffic"))
        return None if seen["problems"] else config

    def wait(config_of: Any, what: str) -> EnvoyConfig:
        try:
            return wait_for(lambda: agree(config_of), timeout=timeout, what=what)
        except AssertionError as error:
            raise RoutesDisagreeError(f"{error}; the last disagreement: {json.dumps(seen)}") from None

    config = wait(lambda: istiod_config(cluster, namespace), f"istiod's routes to say what {release}'s status says")
    if mesh is not None:
        router = mesh.router
        assert isinstance(router, EnvoyRouter), "the mesh fixture routes by istiod"
        wait(lambda: router.config(namespace), "the mesh simulator to route by such a push")
    return config
