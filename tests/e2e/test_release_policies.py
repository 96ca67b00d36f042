"""Policies (Paused) and multi-port Services on the local control plane."""

from __future__ import annotations

from typing import Any

from devcluster import Cluster

from tests.e2e.helpers import (
    apply,
    assert_routing_invariants,
    example_release,
    get,
    patch_spec,
    release_phase,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import assert_istiod_routes_say_status, tcp_weights
from tests.e2e.releases import ReleaseStarter


def test_paused_release_creates_the_canary_but_moves_no_traffic_until_resumed(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    progressing_release(example_release(policy="Paused"), until="Paused")
    wait_for(lambda: (get(cluster, "deployment", "reviews-v2", ns) or {}).get("status", {}).get("readyReplicas"),
             what="canary ready")
    # Routing pins stable before the canary's pods could join the Service, and stays there.
    assert route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 100}]
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 50}})
    wait_for(
        lambda: (get(cluster, "canaryrelease", "reviews", ns) or {}).get("status", {}).get("observedGeneration") == 2,
        what="generation 2 observed",
    )
    assert route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 100}]
    patch_spec(cluster, ns, "reviews", {"policy": "WaitForWorkloadReady"})
    wait_for(lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 50, "v2": 50}],
             what="50/50 after resume")
    assert_routing_invariants(cluster, ns, "reviews")


MULTI_PORT = """
apiVersion: v1
kind: Service
metadata: {name: shop, labels: {app: shop}}
spec:
  selector: {app: shop}
  ports:
    - {name: http-web, port: 8080}
    - {name: grpc-api, port: 9090}
    - {name: tcp-db, port: 5432}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop-v1, labels: {app: shop, version: v1}}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop, version: v1}}
  template:
    metadata: {labels: {app: shop, version: v1}}
    spec:
      containers: [{name: shop, image: example.invalid/shop:1}]
"""


def test_every_port_of_a_multi_port_service_is_routed_to_its_own_port(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    apply(cluster, ns, MULTI_PORT)
    start_operator()
    apply(cluster, ns, {
        "apiVersion": "releases.istio-canary.io/v1alpha1",
        "kind": "CanaryRelease",
        "metadata": {"name": "shop"},
        "spec": {"service": "shop", "stable": {"version": "v1"},
                 "canary": {"version": "v2", "image": "example.invalid/shop:2"}, "traffic": {"weight": 20}},
    })
    wait_for(lambda: release_phase(cluster, ns, "shop", "Progressing"), what="Progressing")
    vs = get(cluster, "virtualservice", "shop", ns)
    assert vs is not None
    http = vs["spec"]["http"]
    assert sorted(m["port"] for r in http for m in r["match"]) == [8080, 9090]
    for route in http:
        port = route["match"][0]["port"]
        assert {d["destination"]["port"]["number"] for d in route["route"]} == {port}
        assert {d["destination"]["subset"]: d["weight"] for d in route["route"]} == {"v1": 80, "v2": 20}
    tcp = vs["spec"]["tcp"]
    assert [m["port"] for r in tcp for m in r["match"]] == [5432]
    assert {d["destination"]["subset"]: d["weight"] for d in tcp[0]["route"]} == {"v1": 80, "v2": 20}
    assert {d["destination"]["port"]["number"] for d in tcp[0]["route"]} == {5432}
    assert_routing_invariants(cluster, ns, "shop")
    # istiod: route configurations 8080 and 9090 each split 80/20 to clusters of their own port,
    # and the 5432 listener's tcp_proxy (TCP routes are not in RDS) too.
    config = assert_istiod_routes_say_status(cluster, ns, "shop")
    assert {"8080", "9090"} <= set(config.route_configs)
    host = f"shop.{ns}.svc.cluster.local"
    assert tcp_weights(config, host=host, port=5432) == {"v1": 80, "v2": 20}
