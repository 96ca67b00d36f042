"""Bad input gets a clear message (status condition and Event, or the API server's refusal) and moves no traffic."""

from __future__ import annotations

import json
from typing import Any

from devcluster import Cluster

from tests.e2e.helpers import (
    apply,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    release_phase,
    route_weights,
    versioned_deployment,
    wait_for,
)
from tests.e2e.releases import ReleaseStarter


def _failed_with(cluster: Cluster, ns: str, text: str) -> dict[str, Any] | None:
    obj = release_phase(cluster, ns, "reviews", "Failed")
    if obj is None or text not in obj["status"].get("message", ""):
        return None
    return obj


def _warning_events(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=reviews,type=Warning", "-o", "json"
    ).stdout
    return list(json.loads(out)["items"])


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def _nothing_written(cluster: Cluster, ns: str) -> None:
    assert get(cluster, "virtualservice", "reviews", ns) is None
    assert get(cluster, "destinationrule", "reviews", ns) is None
    assert get(cluster, "deployment", "reviews-v2", ns) is None


def test_missing_service_is_reported_and_the_release_proceeds_once_it_exists(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    start_operator()
    apply(cluster, ns, example_release())
    obj = wait_for(lambda: _failed_with(cluster, ns, "Service"), what="Failed: Service not found")
    assert f"Service {ns}/reviews not found" in obj["status"]["message"]
    spec_valid = _condition(obj, "SpecValid")
    assert spec_valid["status"] == "False" and spec_valid["reason"] == "ServiceNotFound"
    wait_for(lambda: [e for e in _warning_events(cluster, ns) if e["reason"] == "ServiceNotFound"], what="Event")
    _nothing_written(cluster, ns)

    # GitOps may apply the release before the app: once the Service and Deployment exist, it goes on.
    deploy_bookinfo(cluster, ns)
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Progressing"), timeout=90, what="Progressing")


def test_no_stable_deployment_is_reported_without_writing_anything(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    start_operator()
    apply(cluster, ns, example_release(stable={"version": "v0"}))
    obj = wait_for(lambda: _failed_with(cluster, ns, "v0"), what="Failed: no stable")
    assert _condition(obj, "SpecValid")["status"] == "False"
    _nothing_written(cluster, ns)


def test_several_stable_deployments_are_an_error_not_a_guess(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    twin = get(cluster, "deployment", "reviews-v1", ns)
    assert twin is not None
    twin = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "reviews-v1-copy", "labels": twin["metadata"]["labels"]},
        "spec": {k: twin["spec"][k] for k in ("replicas", "selector", "template")},
    }
    apply(cluster, ns, twin)
    start_operator()
    apply(cluster, ns, example_release())
    obj = wait_for(lambda: release_phase(cluster, ns, "reviews", "Failed"), what="Failed: ambiguous")
    assert "reviews-v1" in obj["status"]["message"] and "reviews-v1-copy" in obj["status"]["message"]
    _nothing_written(cluster, ns)


def test_a_canary_deployment_the_operator_did_not_create_is_never_overwritten(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    theirs = versioned_deployment("reviews", "v2", image="someone/else:1")
    apply(cluster, ns, theirs)
    before = get(cluster, "deployment", "reviews-v2", ns)
    start_operator()
    apply(cluster, ns, example_release())
    obj = wait_for(lambda: _failed_with(cluster, ns, "not created by this release"), what="Failed: conflict")
    assert _condition(obj, "SpecValid")["reason"] == "DeploymentConflict"
    after = get(cluster, "deployment", "reviews-v2", ns)
    assert before is not None and after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "someone/else:1"
    assert get(cluster, "virtualservice", "reviews", ns) is None


def test_edits_the_api_server_refuses_leave_traffic_where_it_was(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    progressing_release()
    wait_for(
        lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 70, "v2": 30}],
        what="70/30",
    )
    refusals = {
        "takeOver must be empty or name stable.version or canary.version": {"takeOver": "v9"},
        "offline needs takeOver": {"offline": True},
        "should be less than or equal to 100": {"traffic": {"weight": 101}},
    }
    for message, patch in refusals.items():
        proc = cluster.kubectl(
            "patch",
            "canaryrelease",
            "reviews",
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps({"spec": patch}),
            check=False,
        )
        assert proc.returncode != 0, patch
        assert message in proc.stderr, proc.stderr
    assert route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 70, "v2": 30}]
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 50}})
    wait_for(
        lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 50, "v2": 50}],
        what="50/50",
    )
