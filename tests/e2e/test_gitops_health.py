"""What GitOps tools see of live releases: kstatus (Flux's library), Argo CD's health check, kubectl wait.

kstatus is asked through hack/kstatus (the library itself, not a reading of its rules); Argo
CD's verdict comes from running the shipped health check on the same live object. kstatus
reads Reconciling and Stalled first and then the Ready condition, so a release is InProgress
until it ends, Current once it has ended as asked, and Failed when it cannot go on.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from devcluster import Cluster

from tests.e2e.gitops import argo_health, kstatus
from tests.e2e.helpers import (
    apply,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    route_weights,
    versioned_deployment,
    wait_for,
)

GROUP_VERSION = "releases.istio-canary.io/v1alpha1"


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}


def _settles(
    cluster: Cluster,
    ns: str,
    *,
    phase: str,
    kstatus_says: str,
    argo_says: str,
    name: str = "reviews",
    timeout: float = 60,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait until the release is in ``phase`` and kstatus and Argo CD say what is expected of it."""

    def look() -> tuple[dict[str, Any], dict[str, Any]] | None:
        obj = get(cluster, "canaryrelease", name, ns)
        if obj is None or obj.get("status", {}).get("phase") != phase:
            return None
        if obj["status"].get("observedGeneration") != obj["metadata"]["generation"]:
            return None  # not this spec's answer yet
        verdict = kstatus(cluster, obj)
        return (obj, verdict) if (verdict["status"], argo_health(obj)["status"]) == (kstatus_says, argo_says) else None

    obj, verdict = wait_for(look, timeout=timeout, what=f"{name} {phase}: kstatus {kstatus_says}, Argo CD {argo_says}")
    summary = [c for c in obj["status"]["conditions"] if c["type"] in ("Ready", "Reconciling", "Stalled")]
    assert [c["observedGeneration"] for c in summary] == [obj["metadata"]["generation"]] * 3
    return obj, verdict


def _true(obj: dict[str, Any]) -> dict[str, str]:
    """The summary conditions that are True, with their reasons."""
    conditions = _conditions(obj)
    summary = ("Ready", "Reconciling", "Stalled")
    return {t: conditions[t]["reason"] for t in summary if conditions[t]["status"] == "True"}


def _wait_ready(cluster: Cluster, ns: str, name: str, timeout: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), "--kubeconfig", cluster.kubeconfig, "wait", "--for=condition=Ready",
         f"canaryrelease/{name}", "-n", ns, f"--timeout={timeout}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_a_manual_release_is_current_at_each_gate_in_progress_while_it_drains_and_ready_once_completed(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    operator = start_operator()
    apply(cluster, ns, example_release(drainSeconds=15))

    # At a manual step nothing is True: Argo CD shows a gate, kstatus reads Ready=False.
    obj, verdict = _settles(cluster, ns, phase="Progressing", kstatus_says="InProgress", argo_says="Suspended")
    assert _true(obj) == {}
    assert _conditions(obj)["Ready"]["reason"] == "Progressing"
    assert [(c["reason"], c["message"]) for c in verdict["conditions"]] == [("Progressing", obj["status"]["message"])]

    # A spec the operator has not looked at yet is in progress, whatever the old status says.
    operator.stop()
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 50}})
    stale = get(cluster, "canaryrelease", "reviews", ns)
    assert stale is not None
    assert [c["reason"] for c in kstatus(cluster, stale)["conditions"]] == ["LatestGenerationNotObserved"]
    assert argo_health(stale)["status"] == "Progressing"
    start_operator()
    _settles(cluster, ns, phase="Progressing", kstatus_says="InProgress", argo_says="Suspended")
    assert route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 50, "v2": 50}]

    patch_spec(cluster, ns, "reviews", {"policy": "Paused"})
    _settles(cluster, ns, phase="Paused", kstatus_says="InProgress", argo_says="Suspended")
    patch_spec(cluster, ns, "reviews", {"policy": "WaitForWorkloadReady", "takeOver": "v2"})
    _settles(cluster, ns, phase="TakenOver", kstatus_says="InProgress", argo_says="Suspended")

    waiter = _wait_ready(cluster, ns, "reviews", "180s")
    time.sleep(2)
    assert waiter.poll() is None, "kubectl wait returned before the release ended"
    patch_spec(cluster, ns, "reviews", {"offline": True})
    # The drain: the operator works by itself, so the release is in progress.
    draining, verdict = _settles(cluster, ns, phase="TakenOver", kstatus_says="InProgress", argo_says="Progressing")
    assert _true(draining) == {"Reconciling": "Draining"}
    assert verdict["message"] == draining["status"]["message"]

    out, _ = waiter.communicate(timeout=180)
    assert waiter.returncode == 0, out
    done = get(cluster, "canaryrelease", "reviews", ns)
    assert done is not None and done["status"]["phase"] == "Completed", "kubectl wait returned before Completed"
    assert _true(done) == {"Ready": "Completed"}
    _settles(cluster, ns, phase="Completed", kstatus_says="Current", argo_says="Healthy")


def test_a_failed_release_is_stalled_a_waiting_one_in_progress_and_an_abort_is_ready(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    start_operator()

    # ratings: no Deployment runs the stable version: Failed, which kstatus calls Failed.
    apply(cluster, ns, {
        "apiVersion": GROUP_VERSION, "kind": "CanaryRelease", "metadata": {"name": "ratings"},
        "spec": {"service": "ratings", "stable": {"version": "v9"}, "canary": {"version": "v2", "image": "ratings:2"}},
    })
    failed, verdict = _settles(cluster, ns, phase="Failed", kstatus_says="Failed", argo_says="Degraded", name="ratings")
    assert _true(failed) == {"Stalled": "StableDeploymentNotFound"}
    assert verdict["message"] == failed["status"]["message"]

    # details: a provided canary whose pod fits no node never gets ready: in progress, waiting.
    canary = versioned_deployment("details", "v2", image="details:2")
    canary["spec"]["template"]["spec"]["nodeSelector"] = {"example.com/no-such-node": "true"}
    apply(cluster, ns, canary)
    apply(cluster, ns, {
        "apiVersion": GROUP_VERSION, "kind": "CanaryRelease", "metadata": {"name": "details"},
        "spec": {"service": "details", "stable": {"version": "v1"}, "canary": {"version": "v2"}},
    })
    waiting, _ = _settles(
        cluster, ns, phase="WaitingForCanary", kstatus_says="InProgress", argo_says="Progressing", name="details"
    )
    assert _true(waiting) == {"Reconciling": "CanaryNotReady"}

    # reviews: aborted on purpose is a healthy end, and kubectl wait returns for it.
    apply(cluster, ns, example_release())
    _settles(cluster, ns, phase="Progressing", kstatus_says="InProgress", argo_says="Suspended")
    patch_spec(cluster, ns, "reviews", {"abort": True})
    aborted, _ = _settles(cluster, ns, phase="Aborted", kstatus_says="Current", argo_says="Healthy")
    assert _true(aborted) == {"Ready": "Aborted"}
    waiter = _wait_ready(cluster, ns, "reviews", "30s")
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, out
