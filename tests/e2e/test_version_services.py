"""routing.mode Services: a client that reaches the released Service without Envoy never lands on the canary.

Such a client is balanced by the Service's selector over the pods behind its endpoints; the
endpoints here are the ones kube-controller-manager computes for the kwok pods. The mesh still
follows the weights, through each version's own Service, as istiod's generated routes show.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from devcluster import Cluster, PrometheusServer
from meshsim.simulator import Simulator

from tests.e2e.helpers import (
    apply,
    as_applied,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    release_phase,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import istiod_config
from tests.e2e.releases import ReleaseStarter
from tests.e2e.test_analysis import release as analysed_release
from tests.e2e.test_analysis import start as analysed_start

# Every state these releases pass through is checked (tests/invariants).
pytestmark = pytest.mark.usefixtures("invariant_monitor")

MODE = {"mode": "Services"}


def endpoint_versions(cluster: Cluster, namespace: str, service: str) -> set[str] | None:
    """The versions of the pods behind ``service``'s ready endpoints (None: no endpoint yet)."""
    slices = json.loads(cluster.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}", "-o", "json"
    ).stdout)["items"]
    listed = cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=reviews", "-o", "json")
    pods = json.loads(listed.stdout)["items"]
    version_of_ip = {p["status"].get("podIP"): p["metadata"]["labels"].get("version") for p in pods}
    ips = {
        address
        for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready", True)
        for address in e.get("addresses") or []
    }
    return {str(version_of_ip.get(ip)) for ip in ips} or None


def reaches_only(cluster: Cluster, namespace: str, service: str, versions: set[str]) -> bool:
    return endpoint_versions(cluster, namespace, service) == versions


def mesh_weights(cluster: Cluster, namespace: str) -> dict[str, int]:
    """istiod's route for reviews: the Service each weighted cluster sends to, and its weight."""
    config = istiod_config(cluster, namespace)
    vhost = config.virtual_host(host=f"reviews.{namespace}.svc.cluster.local", port=9080) or {}
    weights: dict[str, int] = {}
    for entry in vhost.get("routes") or ():
        action = entry.get("route") or {}
        clusters = (action.get("weightedClusters") or {}).get("clusters") or (
            [{"name": action["cluster"], "weight": 100}] if action.get("cluster") else []
        )
        for c in clusters:
            healthy = config.clusters.get(c["name"])
            if healthy is not None and healthy.healthy_endpoints:
                host = c["name"].split("|")[3].split(".")[0]
                weights[host] = weights.get(host, 0) + int(c.get("weight") or 0)
    return weights


def gone(cluster: Cluster, namespace: str, service: str) -> bool:
    return get(cluster, "service", service, namespace) is None


def released_service(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return as_applied(get(cluster, "service", "reviews", namespace))


def test_weight_zero_keeps_outside_clients_on_stable_and_abort_restores_the_service_exactly(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    deploy_bookinfo(cluster, namespace)
    original = released_service(cluster, namespace)
    start_operator()
    apply(cluster, namespace, example_release(traffic={"weight": 0}, routing=MODE))

    wait_for(lambda: reaches_only(cluster, namespace, "reviews-v2", {"v2"}), timeout=120, what="reviews-v2's endpoints")
    wait_for(lambda: release_phase(cluster, namespace, "reviews", "Progressing"), timeout=120, what="Progressing")
    wait_for(lambda: reaches_only(cluster, namespace, "reviews", {"v1"}), timeout=60, what="reviews pinned to v1")
    pinned = get(cluster, "service", "reviews", namespace) or {}
    assert pinned["spec"]["selector"] == {**original["spec"]["selector"], "version": "v1"}
    vs = get(cluster, "virtualservice", "reviews", namespace) or {}
    assert [[d["destination"]["host"] for d in r["route"]] for r in vs["spec"]["http"]] == [["reviews-v1"]]

    patch_spec(cluster, namespace, "reviews", {"abort": True})
    wait_for(lambda: release_phase(cluster, namespace, "reviews", "Aborted"), timeout=120, what="Aborted")
    wait_for(lambda: gone(cluster, namespace, "reviews-v1"), timeout=60, what="reviews-v1 Service gone")
    assert get(cluster, "service", "reviews-v2", namespace) is None
    assert released_service(cluster, namespace) == original


def test_blue_green_moves_outside_clients_only_at_the_take_over_and_completion_hands_the_service_back(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    deploy_bookinfo(cluster, namespace)
    original = released_service(cluster, namespace)
    start_operator()
    apply(cluster, namespace, example_release("blue-green.yaml", routing=MODE))

    wait_for(lambda: release_phase(cluster, namespace, "reviews", "Progressing"), timeout=120, what="Progressing")
    wait_for(lambda: reaches_only(cluster, namespace, "reviews-v2", {"v2"}), timeout=60, what="reviews-v2's endpoints")
    wait_for(lambda: reaches_only(cluster, namespace, "reviews", {"v1"}), timeout=60, what="reviews pinned to v1")
    wait_for(lambda: mesh_weights(cluster, namespace) == {"reviews-v1": 100}, timeout=60, what="istiod: reviews-v1")

    patch_spec(cluster, namespace, "reviews", {"takeOver": "v2"})
    wait_for(lambda: release_phase(cluster, namespace, "reviews", "TakenOver"), timeout=120, what="TakenOver")
    wait_for(lambda: reaches_only(cluster, namespace, "reviews", {"v2"}), timeout=60, what="reviews pinned to v2")
    wait_for(lambda: mesh_weights(cluster, namespace) == {"reviews-v2": 100}, timeout=60, what="istiod: reviews-v2")
    status = (get(cluster, "canaryrelease", "reviews", namespace) or {}).get("status") or {}
    assert (status.get("traffic") or {}).get("canary") == 100

    patch_spec(cluster, namespace, "reviews", {"offline": True})
    wait_for(lambda: release_phase(cluster, namespace, "reviews", "Completed"), timeout=120, what="Completed")
    wait_for(lambda: gone(cluster, namespace, "reviews-v2"), timeout=60, what="reviews-v2 Service gone")
    assert released_service(cluster, namespace) == original
    vs = get(cluster, "virtualservice", "reviews", namespace) or {}
    assert route_weights(vs) == [{"v2": 100}]
    assert vs["spec"]["http"][-1]["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]


def test_the_default_mode_reports_an_ingress_and_a_namespace_without_sidecar_injection(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    deploy_bookinfo(cluster, namespace)
    cluster.kubectl("label", "namespace", namespace, "istio-injection-")
    ingress = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "reviews-web"},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "reviews", "port": {"number": 9080}}}}]}}]},
    }
    apply(cluster, namespace, ingress)
    start_operator()
    apply(cluster, namespace, example_release())

    def mesh_only() -> dict[str, Any] | None:
        status = (get(cluster, "canaryrelease", "reviews", namespace) or {}).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == "MeshOnly"), None)

    condition = wait_for(mesh_only, timeout=120, what="the MeshOnly condition")
    assert condition["status"] == "False"
    assert "Ingress reviews-web" in condition["message"] and "no sidecar injection" in condition["message"]
    warnings = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=MeshBypass", "-o", "json"
    ).stdout
    assert "Ingress reviews-web" in warnings


def test_an_analysis_by_version_services_reads_their_metrics_and_promotes_a_good_canary(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator, prometheus: PrometheusServer
) -> None:
    ns = namespace
    body = analysed_release()
    body["spec"]["routing"] = MODE
    analysed_start(progressing_release, mesh, prometheus.url, body, until="Progressing")
    wait_for(lambda: mesh_weights(cluster, ns) == {"reviews-v1": 80, "reviews-v2": 20}, timeout=60,
             what="istiod routes the first step to the version Services")
    done = wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=150, what="Completed")

    # Istio names the version's own Service in its metrics; the analysis found them under it.
    reported = prometheus.query(
        f'sum by (destination_service_name) (istio_requests_total{{destination_workload_namespace="{ns}"}})'
    )
    assert {"reviews-v1", "reviews-v2"} <= {r["metric"].get("destination_service_name") for r in reported}
    passed = [c for c in done["status"]["analysis"]["history"] if c["verdict"] == "Pass"]
    assert [(c["step"], c["weight"]) for c in passed][-2:] == [(0, 20), (1, 50)]
    assert all(c["canaryRequests"] >= 20 and c["stableRequests"] >= 20 for c in passed)
    assert released_service(cluster, ns)["spec"]["selector"] == {"app": "reviews"}
