"""The mesh simulator routes by the Envoy routes the real istiod generates from the Istio objects
stored in a real API server, and Prometheus scrapes Istio's metrics from it. Without istiod it
reads the VirtualServices itself (the fallback, checked here once)."""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import Cluster, PrometheusServer
from meshsim.envoy_routes import EnvoyConfig
from meshsim.routers import EnvoyRouter
from meshsim.server import SimulatorServer
from meshsim.simulator import Simulator

from tests.e2e.helpers import apply, wait_for
from tests.e2e.istiod_routes import host_routes

pytestmark = pytest.mark.e2e


def deployment(version: str, *, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": "reviews", "version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"reviews-{version}", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "reviews", "image": f"example.invalid/reviews:{version}"}
                    ]
                },
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "reviews"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]},
}

DESTINATION_RULE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "reviews"},
    "spec": {
        "host": "reviews",
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
        ],
    },
}


def virtual_service(http: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {"hosts": ["reviews"], "http": http},
    }


def to(subset: str, weight: int | None = None) -> dict[str, Any]:
    destination: dict[str, Any] = {"destination": {"host": "reviews", "subset": subset}}
    if weight is not None:
        destination["weight"] = weight
    return destination


SPLIT_80_20 = [{"route": [to("v1", 80), to("v2", 20)]}]


def ready_versions(sim: Simulator) -> set[str]:
    return {w["version"] for w in sim.describe()["workloads"] if w["readyReplicas"] > 0}


@pytest.fixture
def bookinfo(cluster: Cluster, namespace: str) -> str:
    """Two ready versions of reviews behind one Service, with subsets for both."""
    for obj in (deployment("v1"), deployment("v2"), SERVICE, DESTINATION_RULE):
        apply(cluster, namespace, obj)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "--timeout=90s",
        "deployment/reviews-v1", "deployment/reviews-v2",
    )  # fmt: skip
    return namespace


def simulator(cluster: Cluster, namespace: str, *, istiod: bool = True) -> Simulator:
    return Simulator(
        cluster.api_client(),
        namespaces=[namespace],
        seed=1,
        tick=0.05,
        istiod=cluster.istiod.grpc_address if istiod else None,
        xds_routes_binary=str(cluster.bin_dir / "istio-xds-routes"),
    )


@pytest.fixture
def mesh_server(cluster: Cluster, bookinfo: str) -> Iterator[SimulatorServer]:
    """The simulator with its HTTP control API and ``/metrics``, both versions ready."""
    with SimulatorServer(simulator(cluster, bookinfo)) as server:
        wait_for(
            lambda: ready_versions(server.simulator) == {"v1", "v2"},
            timeout=30,
            what="ready versions",
        )
        yield server


@pytest.fixture
def sim(mesh_server: SimulatorServer) -> Simulator:
    return mesh_server.simulator


def _istiod_routes(sim: Simulator, namespace: str) -> list[tuple[dict[str, int], dict[str, float]]]:
    """(weights, mirrors) of every route istiod generated for reviews, as the simulator has them."""
    assert isinstance(sim.router, EnvoyRouter)
    config = sim.router.config(namespace) or EnvoyConfig()
    routes = host_routes(config, host=f"reviews.{namespace}.svc.cluster.local", port=9080) or []
    return [(r.weights, r.mirrors) for r in routes]


def _expected(http: list[dict[str, Any]]) -> list[tuple[dict[str, int], dict[str, float]]]:
    """What istiod should make of ``http`` (no match has more than one entry here)."""
    out = []
    for route in http:
        entries = route["route"]
        weights = {e["destination"]["subset"]: int(e.get("weight", 100)) for e in entries}
        mirror = route.get("mirror")
        out.append((weights, {mirror["subset"]: 100.0} if mirror else {}))
    return out


def route_as(
    sim: Simulator, *, cluster: Cluster, namespace: str, http: list[dict[str, Any]]
) -> None:
    """Store the VirtualService and wait until the simulator routes by istiod's translation of it."""
    apply(cluster, namespace, virtual_service(http))
    wait_for(
        lambda: _istiod_routes(sim, namespace) == _expected(http),
        timeout=15,
        what="istiod's push of the VirtualService to reach the simulator",
    )


def served(sim: Simulator, namespace: str) -> dict[str, int]:
    return dict(sim.stats()["services"].get(f"{namespace}/reviews", {}).get("served", {}))


def http_request(server: SimulatorServer, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.url}/request", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.load(response))


def test_an_80_20_split_serves_about_80_20_and_prometheus_sees_both_versions(
    cluster: Cluster,
    bookinfo: str,
    sim: Simulator,
    mesh_server: SimulatorServer,
    prometheus: PrometheusServer,
) -> None:
    route_as(sim, cluster=cluster, namespace=bookinfo, http=SPLIT_80_20)
    prometheus.add_scrape_target(f"meshsim-{bookinfo}", f"127.0.0.1:{mesh_server.port}")
    sim.reset_stats()
    sim.set_load(namespace=bookinfo, service="reviews", rps=400)

    def enough_served() -> dict[str, int] | None:
        counts = served(sim, bookinfo)
        return counts if sum(counts.values()) >= 2000 else None

    counts = wait_for(enough_served, timeout=60, what="2000 served requests")
    sim.set_load(namespace=bookinfo, service="reviews", rps=0)
    total = sum(counts.values())
    assert set(counts) == {"v1", "v2"}
    # 4 standard deviations of the binomial share: a false failure about once in 16,000 runs
    assert abs(counts["v2"] / total - 0.2) < 4 * math.sqrt(0.2 * 0.8 / total)

    query = (
        "sum by (destination_version) (istio_requests_total"
        f'{{reporter="destination", destination_workload_namespace="{bookinfo}"}})'
    )

    def both_versions_scraped() -> list[dict[str, Any]] | None:
        results = prometheus.query(query)
        return results if len(results) == 2 else None

    results = wait_for(
        both_versions_scraped, timeout=30, what="istio_requests_total for both versions"
    )
    by_version = {r["metric"]["destination_version"]: float(r["value"][1]) for r in results}
    assert by_version["v1"] > by_version["v2"] > 0
    prometheus.remove_scrape_target(f"meshsim-{bookinfo}")


def test_header_routes_and_mirrors_follow_the_stored_virtual_service(
    cluster: Cluster, bookinfo: str, sim: Simulator, mesh_server: SimulatorServer
) -> None:
    http: list[dict[str, Any]] = [
        {
            "match": [{"headers": {"end-user": {"exact": "jason"}}}],
            "route": [to("v2")],
        },
        {"route": [to("v1")], "mirror": {"host": "reviews", "subset": "v2"}},
    ]
    route_as(sim, cluster=cluster, namespace=bookinfo, http=http)
    request = {"host": "reviews", "namespace": bookinfo, "port": 9080}
    jason = {**request, "headers": {"end-user": "jason"}}
    assert http_request(mesh_server, jason)["version"] == "v2"
    assert http_request(mesh_server, request) | {"latencyMs": 0} == {
        "version": "v1",
        "code": 200,
        "latencyMs": 0,
        "responseFlags": "-",
        "workload": "reviews-v1",
        "mirroredTo": "v2",
        "mirrors": ["v2"],
    }


def test_without_istiod_the_simulator_reads_the_stored_virtual_service_itself(
    cluster: Cluster, bookinfo: str
) -> None:
    apply(cluster, bookinfo, virtual_service([{"route": [to("v2")]}]))
    with simulator(cluster, bookinfo, istiod=False) as fallback:
        assert fallback.describe()["routingSource"] == "virtualservices"
        wait_for(
            lambda: fallback.request(host="reviews", namespace=bookinfo).version == "v2",
            timeout=15,
            what="the fallback to route by the stored VirtualService",
        )


def test_a_route_to_a_version_scaled_to_zero_answers_503_until_it_is_ready_again(
    cluster: Cluster, bookinfo: str, sim: Simulator, mesh_server: SimulatorServer
) -> None:
    route_as(sim, cluster=cluster, namespace=bookinfo, http=[{"route": [to("v2")]}])
    request = {"host": "reviews", "namespace": bookinfo}
    assert http_request(mesh_server, request)["version"] == "v2"
    cluster.kubectl("scale", "-n", bookinfo, "deployment/reviews-v2", "--replicas=0")

    def unavailable() -> dict[str, Any] | None:
        answer = http_request(mesh_server, request)
        return answer if answer["code"] == 503 else None

    answer = wait_for(unavailable, timeout=60, what="503 once v2 has no ready pod")
    # istiod's EDS no longer lists an endpoint for v2's cluster: Envoy's "no healthy upstream".
    assert answer["responseFlags"] == "UH"
    assert isinstance(sim.router, EnvoyRouter)
    config = sim.router.config(bookinfo)
    assert config is not None
    assert not config.clusters[f"outbound|9080|v2|reviews.{bookinfo}.svc.cluster.local"].healthy_endpoints
    sim.set_version_behaviour(namespace=bookinfo, service="reviews", version="v2", error_rate=1.0)
    cluster.kubectl("scale", "-n", bookinfo, "deployment/reviews-v2", "--replicas=1")
    wait_for(
        lambda: http_request(mesh_server, request)["code"] == 500, timeout=60, what="v2 answering again"
    )
