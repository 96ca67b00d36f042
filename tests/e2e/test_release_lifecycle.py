"""Release after release on one Service: hand-over, aborts after it, new images, drains, conflicts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from devcluster import Cluster

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
from tests.e2e.releases import ReleaseStarter

MARKS = ("releases.istio-canary.io/release", "app.kubernetes.io/managed-by")
USER_ROUTES: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews-routes"},
    "spec": {
        "hosts": ["reviews", "ratings"],
        "http": [
            {"match": [{"uri": {"prefix": "/ratings"}}], "route": [{"destination": {"host": "ratings"}}]},
            {"route": [{"destination": {"host": "reviews"}}], "retries": {"attempts": 3, "perTryTimeout": "2s"}},
        ],
    },
}


def _release(name: str, stable: str, canary: str, **spec: Any) -> dict[str, Any]:
    body = example_release(
        stable={"version": stable},
        canary={"version": canary, "image": f"kubesphere/examples-bookinfo-reviews-{canary}:1.13.0"},
        **spec,
    )
    body["metadata"] = {"name": name}
    return body


def _vs_name(adopted: bool) -> str:
    return "reviews-routes" if adopted else "reviews"


def _reviews_weights(cluster: Cluster, ns: str, adopted: bool) -> list[dict[str, int]]:
    vs = get(cluster, "virtualservice", _vs_name(adopted), ns)
    if vs is None:
        return []
    # Only the routes of the released host (an adopted object also routes ratings).
    return [w for w in route_weights(vs) if w and all(s.startswith("v") for s in w)]


def _status_weights(cluster: Cluster, ns: str, name: str) -> tuple[int, int] | None:
    traffic = ((get(cluster, "canaryrelease", name, ns) or {}).get("status") or {}).get("traffic") or {}
    return (traffic["stable"], traffic["canary"]) if traffic else None


def _marks(obj: dict[str, Any] | None) -> set[str]:
    """The operator's labels and annotations on an object (none once it is handed over)."""
    meta = (obj or {}).get("metadata") or {}
    labels = {k for k in meta.get("labels") or {} if k in MARKS}
    return labels | {k for k in meta.get("annotations") or {} if k.startswith("releases.istio-canary.io/")}


def _run_to_completion(cluster: Cluster, ns: str, name: str, stable: str, canary: str, adopted: bool) -> None:
    apply(cluster, ns, _release(name, stable, canary))
    wait_for(lambda: release_phase(cluster, ns, name, "Progressing"), timeout=90, what=f"{name} Progressing")
    wait_for(
        lambda: _reviews_weights(cluster, ns, adopted) == [{stable: 70, canary: 30}], what=f"{stable}/{canary} 70/30"
    )
    wait_for(lambda: _status_weights(cluster, ns, name) == (70, 30), what=f"{name} status.traffic 70/30")
    assert_istiod_routes_say_status(cluster, ns, name)  # operator-created or adopted, istiod agrees
    if not adopted:  # the helper reads the VirtualService and DestinationRule named after the Service
        assert_routing_invariants(cluster, ns, "reviews")
    patch_spec(cluster, ns, name, {"takeOver": canary})
    wait_for(lambda: _reviews_weights(cluster, ns, adopted) == [{canary: 100}], what=f"{canary} takes over")
    wait_for(lambda: _status_weights(cluster, ns, name) == (0, 100), what=f"{name} status.traffic 0/100")
    patch_spec(cluster, ns, name, {"offline": True})
    wait_for(lambda: release_phase(cluster, ns, name, "Completed"), timeout=60, what=f"{name} Completed")
    assert get(cluster, "deployment", f"reviews-{stable}", ns) is None
    assert _reviews_weights(cluster, ns, adopted) == [{canary: 100}]
    # Handed over: nothing left that makes the next release see someone else's objects.
    wait_for(lambda: not _marks(get(cluster, "deployment", f"reviews-{canary}", ns)), what="survivor handed over")
    wait_for(
        lambda: not _marks(get(cluster, "virtualservice", _vs_name(adopted), ns)), what="VirtualService handed over"
    )
    wait_for(lambda: not _marks(get(cluster, "destinationrule", "reviews", ns)), what="DestinationRule handed over")


@pytest.mark.parametrize("adopted", [False, True], ids=["operator-created-routing", "adopted-routing"])
def test_release_after_release_on_one_service(
    cluster: Cluster, namespace: str, start_operator: Any, adopted: bool
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    if adopted:
        apply(cluster, ns, USER_ROUTES)
    start_operator()

    # v1 -> v2, then the release object is deleted; v2 -> v3 under another name, kept.
    _run_to_completion(cluster, ns, "reviews", "v1", "v2", adopted)
    cluster.kubectl("delete", "canaryrelease", "reviews", "-n", ns, "--timeout=30s")
    assert get(cluster, "deployment", "reviews-v2", ns) is not None
    _run_to_completion(cluster, ns, "reviews-v3", "v2", "v3", adopted)
    handed_over = get(cluster, "virtualservice", _vs_name(adopted), ns)
    assert handed_over is not None

    # v3 -> v4 aborted: back to v3 at 100%, not to v1's or v2's routing.
    apply(cluster, ns, _release("reviews-v4", "v3", "v4"))
    wait_for(lambda: _reviews_weights(cluster, ns, adopted) == [{"v3": 70, "v4": 30}], what="v3/v4 70/30")
    patch_spec(cluster, ns, "reviews-v4", {"abort": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews-v4", "Aborted"), what="v4 Aborted")
    assert get(cluster, "deployment", "reviews-v4", ns) is None
    restored = get(cluster, "virtualservice", _vs_name(adopted), ns)
    assert restored is not None and restored["spec"] == handed_over["spec"]
    assert _reviews_weights(cluster, ns, adopted) == [{"v3": 100}]
    if adopted:  # the user's other routes survived four releases
        assert restored["spec"]["http"][0] == USER_ROUTES["spec"]["http"][0]
        assert all(r.get("retries") == {"attempts": 3, "perTryTimeout": "2s"} for r in restored["spec"]["http"][1:])
    cluster.kubectl("delete", "canaryrelease", "reviews-v4", "-n", ns, "--timeout=30s")
    assert get(cluster, "deployment", "reviews-v3", ns) is not None

    # v3 -> v5 under the reused name of the very first release.
    _run_to_completion(cluster, ns, "reviews", "v3", "v5", adopted)
    deployments = json.loads(cluster.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)["items"]
    assert sorted(d["metadata"]["name"] for d in deployments if d["metadata"]["name"].startswith("reviews")) == [
        "reviews-v5"
    ]


def test_a_new_canary_image_rolls_out_without_traffic_until_its_pods_are_ready(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    start_operator()
    apply(cluster, ns, example_release())
    wait_for(lambda: _reviews_weights(cluster, ns, False) == [{"v1": 70, "v2": 30}], timeout=90, what="70/30")
    first = wait_for(
        lambda: ((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}).get("canaryRevision"),
        what="canaryRevision",
    )
    # Keep the next pods of reviews-v2 from being scheduled: the new image's rollout then stalls
    # with the old pod still ready, which is exactly when no traffic may go to the canary.
    stall = {"spec": {"template": {"spec": {"nodeSelector": {"istio-canary-test/nowhere": "true"}}}}}
    cluster.kubectl("patch", "deployment", "reviews-v2", "-n", ns, "--type=merge", "-p", json.dumps(stall))
    patch_spec(
        cluster, ns, "reviews", {"canary": {"version": "v2", "image": "kubesphere/examples-bookinfo-reviews-v3:1.13.0"}}
    )
    wait_for(lambda: release_phase(cluster, ns, "reviews", "WaitingForCanary"), what="WaitingForCanary")
    wait_for(lambda: _reviews_weights(cluster, ns, False) == [{"v1": 100}], what="no traffic to the new image")
    v2 = get(cluster, "deployment", "reviews-v2", ns)
    assert v2 is not None
    assert v2["spec"]["template"]["spec"]["containers"][0]["image"].endswith("reviews-v3:1.13.0")
    assert (v2.get("status") or {}).get("readyReplicas") == 1  # the old pod is still there and ready
    time.sleep(3)
    assert _reviews_weights(cluster, ns, False) == [{"v1": 100}]
    events = cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "CanaryUpdated" in events

    cluster.kubectl("patch", "deployment", "reviews-v2", "-n", ns, "--type=json",
                    "-p", json.dumps([{"op": "remove", "path": "/spec/template/spec/nodeSelector"}]))
    wait_for(lambda: _reviews_weights(cluster, ns, False) == [{"v1": 70, "v2": 30}], timeout=90, what="30% again")
    obj = wait_for(lambda: release_phase(cluster, ns, "reviews", "Progressing"), what="Progressing again")
    assert obj["status"]["canaryRevision"] != first
    assert_routing_invariants(cluster, ns, "reviews")


def test_offline_waits_out_the_drain_even_across_an_operator_restart(
    cluster: Cluster, namespace: str, start_operator: Any, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    op = progressing_release(example_release(takeOver="v2", drainSeconds=8), until="TakenOver").operator
    patch_spec(cluster, ns, "reviews", {"offline": True})
    status = wait_for(
        lambda: ((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}).get("drain"),
        what="drain in status",
    )
    assert status["deployment"] == "reviews-v1"
    routed_away = time.monotonic()
    dr = get(cluster, "destinationrule", "reviews", ns)
    assert dr is not None and [s["name"] for s in dr["spec"]["subsets"]] == ["v2"]
    # Killed in the middle of the drain: the next process waits out the same deadline.
    op.kill()
    start_operator()
    time.sleep(3)
    assert get(cluster, "deployment", "reviews-v1", ns) is not None
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=60, what="Completed")
    assert time.monotonic() - routed_away >= 6  # 8 s less the time it took to see the status
    assert get(cluster, "deployment", "reviews-v1", ns) is None


def test_a_second_release_on_a_service_in_release_fails_clearly_and_both_delete_at_once(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    progressing_release()
    apply(cluster, ns, _release("reviews-other", "v1", "v3"))
    failed = wait_for(lambda: release_phase(cluster, ns, "reviews-other", "Failed"), what="second release Failed")
    assert "belongs to release 'reviews'" in failed["status"]["message"]
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=reviews-other").stdout
    assert "ForeignObject" in events
    assert get(cluster, "deployment", "reviews-v3", ns) is None
    assert _reviews_weights(cluster, ns, False) == [{"v1": 70, "v2": 30}]

    cluster.kubectl("delete", "canaryrelease", "reviews-other", "-n", ns, "--timeout=30s")
    assert _reviews_weights(cluster, ns, False) == [{"v1": 70, "v2": 30}]  # the other release's routing is untouched
    cluster.kubectl("delete", "canaryrelease", "reviews", "-n", ns, "--timeout=30s")
    assert get(cluster, "virtualservice", "reviews", ns) is None


def test_the_largest_spec_the_crd_admits_is_handled_and_deletes_at_once(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    value = "a" * 200
    rules = [
        {"headers": {f"x-h{h}": {"exact": value} for h in range(4)}, "uri": {"prefix": "/" + value}}
        for _ in range(16)
    ]
    obj = progressing_release(example_release(traffic={"weight": 30, "match": rules})).body
    annotations = obj["metadata"].get("annotations") or {}
    # kopf's bookkeeping is a hash, not a second copy of the spec.
    assert all(len(v) < 200 for k, v in annotations.items() if k.startswith("releases.istio-canary.io/"))
    cluster.kubectl("delete", "canaryrelease", "reviews", "-n", ns, "--timeout=30s")
    assert get(cluster, "canaryrelease", "reviews", ns) is None
    assert get(cluster, "deployment", "reviews-v2", ns) is None


def test_an_autoscaled_service_keeps_autoscaling_through_abort_and_offline(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    stable_hpa: dict[str, Any] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "reviews-v1"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "reviews-v1"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    stable_pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "reviews-v1"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "reviews", "version": "v1"}}},
    }

    def the_users_autoscaling() -> None:
        apply(cluster, ns, stable_hpa)
        apply(cluster, ns, stable_pdb)

    progressing_release(prepare=the_users_autoscaling)
    canary_hpa = wait_for(lambda: get(cluster, "hpa", "reviews-v2", ns), what="the canary's HPA")
    assert canary_hpa["spec"]["scaleTargetRef"]["name"] == "reviews-v2"
    assert (canary_hpa["spec"]["minReplicas"], canary_hpa["spec"]["maxReplicas"]) == (1, 4)
    assert canary_hpa["spec"]["metrics"] == stable_hpa["spec"]["metrics"]
    canary_pdb = wait_for(lambda: get(cluster, "pdb", "reviews-v2", ns), what="the canary's PDB")
    assert canary_pdb["spec"]["selector"]["matchLabels"] == {"app": "reviews", "version": "v2"}

    # Abort: the copies go with the canary; the user's own objects stay exactly as they were.
    patch_spec(cluster, ns, "reviews", {"abort": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Aborted"), what="Aborted")
    wait_for(lambda: get(cluster, "hpa", "reviews-v2", ns) is None, what="the canary's HPA removed")
    assert get(cluster, "pdb", "reviews-v2", ns) is None
    kept = get(cluster, "hpa", "reviews-v1", ns)
    assert kept is not None and {k: kept["spec"].get(k) for k in stable_hpa["spec"]} == stable_hpa["spec"]

    # Again, through to offline: the surviving version keeps an HPA, now a plain object.
    patch_spec(cluster, ns, "reviews", {"abort": False})
    wait_for(lambda: get(cluster, "hpa", "reviews-v2", ns), timeout=60, what="the canary's HPA again")
    patch_spec(cluster, ns, "reviews", {"takeOver": "v2"})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "TakenOver"), timeout=60, what="TakenOver")
    patch_spec(cluster, ns, "reviews", {"offline": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=60, what="Completed")
    def handed_over_hpa() -> dict[str, Any] | None:
        hpa = get(cluster, "hpa", "reviews-v2", ns)
        return hpa if hpa is not None and not _marks(hpa) else None

    survivor = wait_for(handed_over_hpa, what="HPA handed over")
    assert survivor["spec"]["scaleTargetRef"]["name"] == "reviews-v2"
    assert get(cluster, "pdb", "reviews-v2", ns) is not None
