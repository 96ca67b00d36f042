"""Sticky canary sessions (traffic.sessionAffinity) on the local control plane, routed by istiod.

The operator writes the cookie route and the canary's Set-Cookie into the VirtualService; the
API server and istiod's webhook accept them, istiod translates them into Envoy routes (a cookie
header matcher, and ``response_headers_to_add`` on the canary's weighted cluster), and the mesh
simulator routes clients that keep cookies by that translation. So these tests prove where a
browser's requests would land, weight after weight.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import yaml
from devcluster import Cluster
from meshsim import envoy_match, envoy_routes, xds
from meshsim.matching import Request
from meshsim.routers import EnvoyRouter
from meshsim.sessions import ClientReport
from meshsim.simulator import Simulator

from tests.e2e.helpers import (
    EXAMPLES,
    apply,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    release_phase,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import assert_istiod_routes_say_status
from tests.e2e.releases import ReleaseStarter

pytestmark = pytest.mark.usefixtures("invariant_monitor")

COOKIE = "reviews-canary"
CLIENTS = 300


def _affinity(weight: int, **spec: Any) -> dict[str, Any]:
    traffic = {"weight": weight, "sessionAffinity": {"cookieName": COOKIE, "maxAge": 3600}}
    return example_release(traffic=traffic, **spec)


def _in_force(cluster: Cluster, ns: str, mesh: Simulator, weight: int) -> dict[str, Any]:
    """Wait for the VirtualService at ``weight`` (behind the cookie route), then for istiod and the
    simulator to route by it; returns the VirtualService."""
    wanted = [{"v2": 100}, {"v1": 100 - weight, "v2": weight}]
    wait_for(lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == wanted, what=f"{weight}%")
    assert_istiod_routes_say_status(cluster, ns, mesh=mesh)
    mesh.refresh()
    vs = get(cluster, "virtualservice", "reviews", ns)
    assert vs is not None
    return vs


def _round(mesh: Simulator, ns: str, requests: int = 1) -> list[ClientReport]:
    reports = mesh.session_round(name="browsers", host="reviews", namespace=ns, port=9080, clients=CLIENTS,
                                 requests=requests)
    assert {code for report in reports for code in report.codes} == {200}
    return reports


def _istiod_routes(mesh: Simulator, ns: str) -> list[dict[str, Any]]:
    """The raw Envoy routes of reviews on 9080 that the simulator routes by."""
    assert isinstance(mesh.router, EnvoyRouter)
    config = mesh.router.config(ns)
    assert config is not None
    vhost = config.virtual_host(host=f"reviews.{ns}.svc.cluster.local", port=9080)
    return list((vhost or {}).get("routes") or [])


def _envoy_split(mesh: Simulator, ns: str) -> list[dict[str, int]]:
    """Per Envoy route of reviews: the subset (or the version's own Service) -> weight."""
    split = []
    for route in _istiod_routes(mesh, ns):
        weights: dict[str, int] = {}
        for name, weight in envoy_routes.weighted_clusters(route.get("route") or {}):
            parsed = envoy_routes.parse_cluster_name(name)
            key = parsed.subset or parsed.host.split(".")[0]
            weights[key] = weights.get(key, 0) + weight
        split.append(weights)
    return split


def _split_is(mesh: Simulator, ns: str, wanted: list[dict[str, int]]) -> bool:
    return _envoy_split(mesh, ns) == wanted


def test_a_client_once_on_the_canary_stays_on_it_at_every_later_weight_until_the_abort(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    progressing_release(_affinity(10))
    vs = _in_force(cluster, ns, mesh, 10)
    sticky, weighted = vs["spec"]["http"]
    assert sticky["name"] == "istio-canary-reviews-9080-sticky"
    set_cookie = weighted["route"][1]["headers"]["response"]["add"]["Set-Cookie"]
    assert set_cookie.startswith(f"{COOKIE}=v2-") and set_cookie.endswith("; Max-Age=3600; Path=/")
    # istiod: a cookie header matcher, and the Set-Cookie on v2's weighted cluster alone.
    envoy = _istiod_routes(mesh, ns)
    assert envoy[0]["match"]["headers"][0]["name"] == "cookie"
    clusters = envoy[1]["route"]["weightedClusters"]["clusters"]
    assert [c.get("responseHeadersToAdd") for c in clusters] == [
        None, [{"header": {"key": "Set-Cookie", "value": set_cookie}}]
    ], json.dumps(clusters)
    assert [envoy_routes.parse_cluster_name(c["name"]).subset for c in clusters] == ["v1", "v2"]

    first = _round(mesh, ns)
    sticky_clients = {r.client for r in first if r.versions == ("v2",)}
    # Binomial(300, 0.1): 30 on the canary, give or take 4 standard deviations (5.2 each).
    assert 10 <= len(sticky_clients) <= 55, len(sticky_clients)
    assert all(COOKIE in r.cookies for r in first if r.client in sticky_clients)
    assert not any(r.cookies for r in first if r.client not in sticky_clients)

    for weight in (30, 60):
        patch_spec(cluster, ns, "reviews", {"traffic": {"weight": weight}})
        _in_force(cluster, ns, mesh, weight)
        reports = _round(mesh, ns, requests=3)
        stayed = [r.versions for r in reports if r.client in sticky_clients]
        assert stayed == [("v2", "v2", "v2")] * len(sticky_clients), f"at {weight}%: {stayed}"
        # Clients without the cookie follow the weight on their first request (and stay, if on v2).
        newcomers = [r for r in reports if r.client not in sticky_clients]
        on_canary = [r for r in newcomers if r.versions[0] == "v2"]
        p, n = weight / 100, len(newcomers)
        # Within 4 standard deviations of Binomial(n, p).
        assert abs(len(on_canary) - n * p) < 4 * (n * p * (1 - p)) ** 0.5, (weight, len(on_canary), n)
        assert all(r.versions == ("v2", "v2", "v2") for r in on_canary)
        # A client the weight sends to v2 on a later request of the round holds the cookie from then on.
        sticky_clients = {r.client for r in reports if COOKIE in r.cookies}

    patch_spec(cluster, ns, "reviews", {"abort": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Aborted"), timeout=90, what="Aborted")
    wait_for(
        lambda: not any("cookie" in json.dumps(route.get("match")) for route in _istiod_routes(mesh, ns)),
        what="istiod's routes without the cookie route",
    )
    assert "sticky" not in json.dumps(get(cluster, "virtualservice", "reviews", ns))
    mesh.refresh()
    # Everyone on v1, the clients with a canary cookie included.
    assert {v for r in _round(mesh, ns, requests=2) for v in r.versions} == {"v1"}


def test_routing_mode_services_keeps_sticky_clients_on_the_canarys_own_service(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    progressing_release(_affinity(20, routing={"mode": "Services"}))
    for weight in (20, 50):
        if weight != 20:
            patch_spec(cluster, ns, "reviews", {"traffic": {"weight": weight}})
        wanted = [{"reviews-v2": 100}, {"reviews-v1": 100 - weight, "reviews-v2": weight}]
        wait_for(functools.partial(_split_is, mesh, ns, wanted), timeout=60, what=f"istiod: {weight}% to reviews-v2")
        mesh.refresh()
        reports = _round(mesh, ns, requests=3)
        if weight == 20:
            sticky_clients = {r.client for r in reports if r.versions[0] == "v2"}
            assert sticky_clients and all(COOKIE in r.cookies for r in reports if r.client in sticky_clients)
        assert all(r.versions == ("v2", "v2", "v2") for r in reports if r.client in sticky_clients), weight


def _gateway_routes(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    """istiod's routes for bookinfo.example.com on an ingress gateway's port 80."""
    config = xds.fetch_config(
        xds_address=cluster.istiod.grpc_address, namespace=ns, binary=str(cluster.bin_dir / xds.BINARY),
        gateway_labels={"istio": "ingressgateway"},
    )
    route_config = config.route_configs.get("http.80")
    vhost = route_config.virtual_host("bookinfo.example.com") if route_config is not None else None
    return list((vhost or {}).get("routes") or [])


def _gateway_pick(routes: list[dict[str, Any]], *, path: str, cookie: str | None) -> list[tuple[str | None, int]]:
    """The (subset, weight) pairs of the first gateway route that takes a request for ``path``."""
    headers = {"cookie": cookie} if cookie else {}
    request = Request(host="bookinfo.example.com", namespace="", path=path, headers=headers)
    entry = next(r for r in routes if envoy_match.route_matches(r.get("match") or {}, request))
    pairs = envoy_routes.weighted_clusters(entry.get("route") or {})
    return [(envoy_routes.parse_cluster_name(name).subset, weight) for name, weight in pairs]


def test_requests_through_a_gateway_keep_to_the_canary_by_the_same_cookie(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    start_operator()
    *routing, release = yaml.safe_load_all((EXAMPLES / "productpage-gateway.yaml").read_text())
    release["spec"]["traffic"]["sessionAffinity"] = {"cookieName": COOKIE}
    for obj in (*routing, release):
        apply(cluster, ns, obj)
    # istiod splits each of the gateway route's five matches, behind a cookie copy of each.
    wait_for(lambda: len(_gateway_routes(cluster, ns)) == 10, timeout=120, what="istiod's gateway routes")
    routes = _gateway_routes(cluster, ns)
    gateway = get(cluster, "virtualservice", "bookinfo", ns)
    assert gateway is not None
    set_cookie = gateway["spec"]["http"][1]["route"][1]["headers"]["response"]["add"]["Set-Cookie"]
    value = set_cookie.split(";")[0]
    assert _gateway_pick(routes, path="/productpage", cookie=f"theme=dark; {value}") == [("v2", 100)]
    assert _gateway_pick(routes, path="/productpage", cookie="theme=dark") == [("v1", 80), ("v2", 20)]
    assert _gateway_pick(routes, path="/static/app.css", cookie=value) == [("v2", 100)]
    canary = routes[-1]["route"]["weightedClusters"]["clusters"][1]
    assert canary["responseHeadersToAdd"] == [{"header": {"key": "Set-Cookie", "value": set_cookie}}]

    patch_spec(cluster, ns, "productpage", {"takeOver": "v2"})
    wait_for(lambda: len(_gateway_routes(cluster, ns)) == 5, timeout=60, what="the gateway's cookie routes gone")
    assert _gateway_pick(_gateway_routes(cluster, ns), path="/productpage", cookie="theme=dark") == [("v2", 100)]


@pytest.mark.parametrize("strategy", ["BlueGreen", "Mirror"])
def test_the_api_server_refuses_session_affinity_without_the_canary_strategy(
    cluster: Cluster, namespace: str, strategy: str
) -> None:
    body = _affinity(10, strategy=strategy)
    proc = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)
    assert proc.returncode != 0
    assert "traffic.sessionAffinity keeps clients on a canary that the weight chose" in proc.stderr
