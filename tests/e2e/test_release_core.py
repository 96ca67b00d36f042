"""The KubeSphere grayscale-release tutorial by YAML: canary by weight, take over, offline, abort."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from devcluster import Cluster
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import (
    apply,
    assert_routing_invariants,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    release_phase,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import assert_istiod_routes_say_status
from tests.e2e.loopback import free_port
from tests.e2e.releases import ReleaseStarter

# Every state these releases pass through is checked (tests/invariants).
pytestmark = pytest.mark.usefixtures("invariant_monitor")

def _weights(cluster: Cluster, ns: str) -> list[dict[str, int]]:
    vs = get(cluster, "virtualservice", "reviews", ns)
    return route_weights(vs) if vs else []


def _status_traffic(cluster: Cluster, ns: str) -> dict[str, Any]:
    obj = get(cluster, "canaryrelease", "reviews", ns) or {}
    return dict(obj.get("status", {}).get("traffic") or {})


def test_canary_by_weight_take_over_and_offline_follow_the_tutorial(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    # Step 2: reviews-v2 is a copy of v1 with version=v2 and the new image; 70/30 once it is ready.
    obj = progressing_release().body
    v2 = get(cluster, "deployment", "reviews-v2", ns)
    assert v2 is not None
    assert v2["spec"]["selector"]["matchLabels"] == {"app": "reviews", "version": "v2"}
    assert v2["spec"]["template"]["metadata"]["labels"]["version"] == "v2"
    assert v2["spec"]["template"]["spec"]["containers"][0]["image"] == "kubesphere/examples-bookinfo-reviews-v2:1.13.0"
    dr = get(cluster, "destinationrule", "reviews", ns)
    assert dr is not None
    assert {s["name"]: s["labels"] for s in dr["spec"]["subsets"]} == {"v1": {"version": "v1"}, "v2": {"version": "v2"}}
    assert _weights(cluster, ns) == [{"v1": 70, "v2": 30}]
    wait_for(lambda: _status_traffic(cluster, ns).get("canary") == 30, what="status.traffic read back")
    assert_routing_invariants(cluster, ns, "reviews")
    assert_istiod_routes_say_status(cluster, ns)  # istiod's Envoy routes split 70/30 too
    stored = get(cluster, "canaryrelease", "reviews", ns)
    assert stored is not None
    obj = stored
    versions = {v["version"]: v for v in obj["status"]["versions"]}
    assert versions["v2"]["deployment"] == "reviews-v2" and versions["v2"]["readyReplicas"] == 1
    assert versions["v1"]["deployment"] == "reviews-v1" and versions["v1"]["weight"] == 70

    # Printer columns show strategy, phase and weights.
    table = cluster.kubectl("get", "canaryrelease", "reviews", "-n", ns).stdout
    assert "Canary" in table.splitlines()[1] and "Progressing" in table and "70" in table and "30" in table

    # Step 3: changing the weight moves the split.
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 60}})
    wait_for(lambda: _weights(cluster, ns) == [{"v1": 40, "v2": 60}], what="weight 60")
    wait_for(lambda: _status_traffic(cluster, ns).get("canary") == 60, what="status 60")
    assert_routing_invariants(cluster, ns, "reviews")

    # Step 4: take over to v2 keeps v1 running; back to v1 at once.
    patch_spec(cluster, ns, "reviews", {"takeOver": "v2"})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "TakenOver"), what="TakenOver")
    assert _weights(cluster, ns) == [{"v2": 100}]
    assert get(cluster, "deployment", "reviews-v1", ns) is not None
    patch_spec(cluster, ns, "reviews", {"takeOver": "v1"})
    wait_for(lambda: _weights(cluster, ns) == [{"v1": 100}], what="switch back to v1")
    patch_spec(cluster, ns, "reviews", {"takeOver": "v2"})
    wait_for(lambda: _weights(cluster, ns) == [{"v2": 100}], what="v2 again")
    assert_routing_invariants(cluster, ns, "reviews")

    # Step 5: offline deletes v1, drops its subset, leaves v2 at 100%; Completed.
    patch_spec(cluster, ns, "reviews", {"offline": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), what="Completed")
    assert get(cluster, "deployment", "reviews-v1", ns) is None
    dr = get(cluster, "destinationrule", "reviews", ns)
    assert dr is not None and [s["name"] for s in dr["spec"]["subsets"]] == ["v2"]
    assert _weights(cluster, ns) == [{"v2": 100}]
    assert_routing_invariants(cluster, ns, "reviews")

    # Deleting a completed release removes nothing.
    cluster.kubectl("delete", "canaryrelease", "reviews", "-n", ns, "--timeout=30s")
    assert get(cluster, "deployment", "reviews-v2", ns) is not None
    assert _weights(cluster, ns) == [{"v2": 100}]


def test_abort_restores_original_routing_and_removes_the_canary(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    # A VirtualService the user already had: its retries, timeout and an unrelated route must survive.
    original: dict[str, Any] = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews-routes"},
        "spec": {
            "hosts": ["reviews", "ratings"],
            "http": [
                {"match": [{"uri": {"prefix": "/ratings"}}], "route": [{"destination": {"host": "ratings"}}]},
                {
                    "route": [{"destination": {"host": "reviews"}}],
                    "retries": {"attempts": 3, "perTryTimeout": "2s"},
                    "timeout": "10s",
                },
            ],
        },
    }
    progressing_release(prepare=lambda: apply(cluster, ns, original))
    vs = get(cluster, "virtualservice", "reviews-routes", ns)
    assert vs is not None
    assert get(cluster, "virtualservice", "reviews", ns) is None  # adopted, not duplicated
    ratings = [r for r in vs["spec"]["http"] if r["route"][0]["destination"]["host"] == "ratings"]
    assert ratings == [original["spec"]["http"][0]]
    reviews = [r for r in vs["spec"]["http"] if r["route"][0]["destination"]["host"] == "reviews"]
    assert reviews and all(r.get("retries") == {"attempts": 3, "perTryTimeout": "2s"} for r in reviews)
    assert all(r.get("timeout") == "10s" for r in reviews)
    weights = [w for w in route_weights(vs) if set(w) <= {"v1", "v2"} and w]
    assert weights == [{"v1": 70, "v2": 30}]
    # In the adopted object's Envoy routes too: the reviews routes split, the /ratings one stays.
    assert_istiod_routes_say_status(cluster, ns)

    patch_spec(cluster, ns, "reviews", {"abort": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Aborted"), what="Aborted")
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    restored = get(cluster, "virtualservice", "reviews-routes", ns)
    assert restored is not None and restored["spec"] == original["spec"]
    assert "releases.istio-canary.io/original-spec" not in (restored["metadata"].get("annotations") or {})
    assert get(cluster, "destinationrule", "reviews", ns) is None
    assert get(cluster, "deployment", "reviews-v1", ns) is not None


def test_deleting_a_release_before_it_completes_restores_routing_and_removes_the_canary(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    progressing_release()
    cluster.kubectl("delete", "canaryrelease", "reviews", "-n", ns, "--timeout=60s")
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    assert get(cluster, "virtualservice", "reviews", ns) is None
    assert get(cluster, "destinationrule", "reviews", ns) is None
    assert get(cluster, "deployment", "reviews-v1", ns) is not None


def test_operator_killed_after_canary_exists_is_finished_by_a_new_process(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    # The first process dies (SIGKILL-like, no cleanup) right after its third write: the
    # DestinationRule, the VirtualService pinning stable, then the canary Deployment. The 30%
    # route is not written yet.
    first = start_operator(env={"ISTIO_CANARY_CRASH_AFTER_WRITES": "3"})
    apply(cluster, ns, example_release())
    wait_for(lambda: first.proc is not None and first.proc.poll() is not None, what="first operator to die")
    assert get(cluster, "deployment", "reviews-v2", ns) is not None
    assert _weights(cluster, ns) == [{"v1": 100}]
    start_operator()
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Progressing"), what="Progressing after restart")
    wait_for(lambda: _weights(cluster, ns) == [{"v1": 70, "v2": 30}], what="70/30 after restart")
    assert_routing_invariants(cluster, ns, "reviews")


def test_offline_with_scale_to_zero_keeps_the_stable_deployment_for_gitops(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    progressing_release(
        example_release(takeOver="v2", offline=True, offlineAction="ScaleToZero"), until="Completed"
    )
    v1 = get(cluster, "deployment", "reviews-v1", ns)
    assert v1 is not None and v1["spec"]["replicas"] == 0
    assert _weights(cluster, ns) == [{"v2": 100}]


def test_status_write_is_skipped_when_nothing_changed(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    metrics_port = free_port()
    # A resync every second, and the operator's own count of them: the timer looks at the
    # release several times in a few seconds, and every look must find nothing to write.
    progressing_release(operator_args=("--resync-seconds", "1", "--metrics-port", str(metrics_port)))
    wait_for(lambda: _status_traffic(cluster, ns).get("canary") == 30, what="status settled")
    before = _resource_versions(cluster, ns)
    looks = _timer_reconciles(metrics_port)
    wait_for(lambda: _timer_reconciles(metrics_port) >= looks + 3, timeout=30, what="three more timer reconciles")
    after = _resource_versions(cluster, ns)
    assert after == before, json.dumps({"before": before, "after": after})


def _resource_versions(cluster: Cluster, ns: str) -> dict[str, str]:
    objects = {k: get(cluster, k, "reviews", ns) for k in ("canaryrelease", "virtualservice", "destinationrule")}
    objects["deployment"] = get(cluster, "deployment", "reviews-v2", ns)
    return {kind: (obj or {})["metadata"]["resourceVersion"] for kind, obj in objects.items()}


def _timer_reconciles(metrics_port: int) -> float:
    """How many reconciles the timer ran, by the operator's own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "istio_canary_reconcile_duration_seconds_count" and sample.labels.get("handler") == "timer"
    )
