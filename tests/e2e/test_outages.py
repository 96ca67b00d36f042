"""Outage campaign: the API server killed and restarted, etcd frozen, istiod down, in the middle of a release.

The operator keeps running through each outage: it has to reconnect its watches, finish what
it was doing without creating anything twice, and converge on the spec as it is now. The
invariant monitor checks every state before and after (its watches reconnect too). Prometheus
stopped mid-analysis is test_analysis.py's, which runs under the monitor as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from devcluster import Cluster

from tests.e2e.helpers import (
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
from tests.e2e.outages import ControlPlane
from tests.e2e.processes import OperatorProcess

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("invariant_monitor")]

CONVERGE_SECONDS = 240  # reconnecting backs off; generous on a loaded 2-core machine


def _reviews_deployments(cluster: Cluster, ns: str) -> list[str]:
    listed = json.loads(cluster.kubectl("get", "deployments", "-n", ns, "-l", "app=reviews", "-o", "json").stdout)
    return sorted(d["metadata"]["name"] for d in listed["items"] if (d["spec"].get("replicas") or 0) > 0)


def _split(cluster: Cluster, ns: str, canary: int) -> bool:
    obj = get(cluster, "canaryrelease", "reviews", ns) or {}
    weights = route_weights(get(cluster, "virtualservice", "reviews", ns) or {})
    said = ((obj.get("status") or {}).get("traffic") or {}).get("canary")
    return weights == [{"v1": 100 - canary, "v2": canary}] and said == canary


def test_api_server_restarted_three_times_mid_release_converges_with_no_duplicate_deployment(
    cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns, control_plane = namespace, ControlPlane(cluster)
    deploy_bookinfo(cluster, ns)
    operator = start_operator(env={"PYTHONUNBUFFERED": "1"})
    apply(cluster, ns, example_release())
    # Down while the release is being set up: the routing is there, the canary may or may not be.
    wait_for(lambda: get(cluster, "destinationrule", "reviews", ns), timeout=120, what="the first write")
    control_plane.restart("kube-apiserver", down_seconds=10)
    wait_for(lambda: _split(cluster, ns, 30), timeout=CONVERGE_SECONDS, what="30% after the first restart")
    assert _reviews_deployments(cluster, ns) == ["reviews-v1", "reviews-v2"]

    # Down right after a spec edit: the edit is stored, the operator may not have seen it.
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 60}})
    control_plane.restart("kube-apiserver", down_seconds=10)
    wait_for(lambda: _split(cluster, ns, 60), timeout=CONVERGE_SECONDS, what="60% after the second restart")

    patch_spec(cluster, ns, "reviews", {"takeOver": "v2", "offline": True})
    control_plane.restart("kube-apiserver", down_seconds=5)
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=CONVERGE_SECONDS, what="Completed")
    assert _reviews_deployments(cluster, ns) == ["reviews-v2"]
    assert route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v2": 100}]
    assert operator.proc is not None and operator.proc.poll() is None, "the operator gave up instead of reconnecting"
    print(f"outages: kube-apiserver restarted 3 times; components started again after it: {control_plane.restarted}")


def test_etcd_frozen_mid_release_holds_everything_then_converges(
    cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    operator = start_operator()
    apply(cluster, ns, example_release())
    wait_for(lambda: _split(cluster, ns, 30), timeout=CONVERGE_SECONDS, what="30%")
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 80}})
    control_plane = ControlPlane(cluster)
    control_plane.components["etcd"].pause(seconds=15)
    control_plane.revive()
    wait_for(lambda: _split(cluster, ns, 80), timeout=CONVERGE_SECONDS, what="80% after etcd came back")
    assert _reviews_deployments(cluster, ns) == ["reviews-v1", "reviews-v2"]
    assert operator.proc is not None and operator.proc.poll() is None


def test_istiod_down_while_the_operator_writes_moves_nothing_says_why_then_converges(
    cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    """Istio's validating webhook fails closed, so with istiod down the API server refuses every
    VirtualService and DestinationRule write: the release must hold its stored split whole, say
    why in its status, and carry out the edit once istiod is back (and istiod then pushes it)."""
    ns = namespace
    deploy_bookinfo(cluster, ns)
    operator = start_operator()
    apply(cluster, ns, example_release())
    wait_for(lambda: _split(cluster, ns, 30), timeout=CONVERGE_SECONDS, what="30%")
    before = get(cluster, "virtualservice", "reviews", ns) or {}
    cluster.istiod.stop()
    try:
        patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 60}})

        def says_why() -> str | None:
            status = (get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}
            message = str(status.get("message") or "")
            return message if "webhook" in message.lower() else None

        message = wait_for(says_why, timeout=60, what="the status to say the routing write is refused")
        vs = get(cluster, "virtualservice", "reviews", ns) or {}
        assert vs["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "routing moved"
        assert _split(cluster, ns, 30), "the status no longer says the split that is stored"
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        cluster.istiod.up(cluster)
    wait_for(lambda: _split(cluster, ns, 60), timeout=CONVERGE_SECONDS, what="60% once istiod is back")
    assert_istiod_routes_say_status(cluster, ns, timeout=60)
    print(f"outages: istiod down; the release said: {message}")
