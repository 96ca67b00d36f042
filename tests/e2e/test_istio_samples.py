"""Releases over versions that are already deployed, on Istio's own Bookinfo sample, unchanged.

The manifests are read from the istio.io/istio module at the version istiod is built from
(``hack/build-controlplane.sh`` copies ``samples/bookinfo`` into ``.bin/istio-samples``):
Bookinfo runs reviews v1, v2 and v3 from the start, ``destination-rule-all.yaml`` gives every
version a subset, and ``virtual-service-all-v1.yaml`` sends everything to v1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devcluster import Cluster

from tests.e2e.helpers import (
    apply,
    as_applied,
    get,
    patch_spec,
    release_phase,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import assert_istiod_routes_say_status

SAMPLES = Path(__file__).resolve().parents[2] / ".bin" / "istio-samples"


def _sample(path: str) -> str:
    text = (SAMPLES / path).read_text()
    assert "kind:" in text, f"{path} is not a manifest"
    return text


def _deploy_istio_bookinfo(cluster: Cluster, ns: str, *routing: str) -> None:
    apply(cluster, ns, _sample("kube/bookinfo.yaml"))
    for name in ("destination-rule-all.yaml", *routing):
        apply(cluster, ns, _sample(f"networking/{name}"))
    def ready(version: str) -> int | None:
        status = (get(cluster, "deployment", f"reviews-{version}", ns) or {}).get("status", {})
        return int(status["readyReplicas"]) if status.get("readyReplicas") else None

    for version in ("v1", "v2", "v3"):
        wait_for(lambda v=version: ready(v), timeout=120, what=f"Istio's reviews-{version} ready")  # type: ignore[misc]


def _release(name: str, canary: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "releases.istio-canary.io/v1alpha1",
        "kind": "CanaryRelease",
        "metadata": {"name": name},
        "spec": {"service": "reviews", "stable": {"version": "v1"}, "canary": canary, **spec},
    }


def _status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict((get(cluster, "canaryrelease", name, ns) or {}).get("status") or {})


def _reviews_weights(cluster: Cluster, ns: str) -> list[dict[str, int]]:
    vs = get(cluster, "virtualservice", "reviews", ns)
    return route_weights(vs) if vs is not None else []


def _deployment_specs(cluster: Cluster, ns: str) -> dict[str, Any]:
    listed = json.loads(cluster.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)["items"]
    return {d["metadata"]["name"]: (d["metadata"]["generation"], d["spec"]) for d in listed}


def test_a_release_over_istios_pre_deployed_v3_moves_only_traffic_and_leaves_v2_untouched(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    _deploy_istio_bookinfo(cluster, ns, "virtual-service-all-v1.yaml")
    before = _deployment_specs(cluster, ns)
    start_operator()

    apply(cluster, ns, _release("reviews", {"version": "v3"}, traffic={"weight": 20}))
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Progressing"), timeout=90, what="Progressing")
    wait_for(lambda: _reviews_weights(cluster, ns) == [{"v1": 80, "v3": 20}], what="v1/v3 80/20")
    wait_for(lambda: (_status(cluster, ns, "reviews").get("traffic") or {}).get("canary") == 20, what="status 20%")
    assert_istiod_routes_say_status(cluster, ns, "reviews")
    versions = _status(cluster, ns, "reviews")["versions"]
    assert [(v["deployment"], v["managed"]) for v in versions] == [("reviews-v1", False), ("reviews-v3", False)]
    assert _deployment_specs(cluster, ns) == before, "the release changed or created a Deployment"
    # Adopted, not rewritten: kubectl's record of what it applied survives the operator's writes.
    for kind in ("virtualservice", "destinationrule"):
        annotations = get(cluster, kind, "reviews", ns)["metadata"]["annotations"]  # type: ignore[index]
        assert "kubectl.kubernetes.io/last-applied-configuration" in annotations, kind
    subsets = get(cluster, "destinationrule", "reviews", ns)["spec"]["subsets"]  # type: ignore[index]
    assert [s["name"] for s in subsets] == ["v1", "v2", "v3"]

    patch_spec(cluster, ns, "reviews", {"takeOver": "v3"})
    wait_for(lambda: _reviews_weights(cluster, ns) == [{"v3": 100}], what="v3 takes over")
    patch_spec(cluster, ns, "reviews", {"offline": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=60, what="Completed")
    after = _deployment_specs(cluster, ns)
    assert "reviews-v1" not in after, "job offline deletes the old version"
    assert after["reviews-v3"] == before["reviews-v3"] and after["reviews-v2"] == before["reviews-v2"]
    assert _reviews_weights(cluster, ns) == [{"v3": 100}]
    subsets = get(cluster, "destinationrule", "reviews", ns)["spec"]["subsets"]  # type: ignore[index]
    assert [s["name"] for s in subsets] == ["v2", "v3"], "only the leaving version's subset goes"


def test_a_new_version_by_image_over_istios_objects_aborts_back_to_them_byte_for_byte(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    _deploy_istio_bookinfo(cluster, ns, "virtual-service-all-v1.yaml")
    originals = {kind: as_applied(get(cluster, kind, "reviews", ns)) for kind in ("virtualservice", "destinationrule")}
    start_operator()

    image = "registry.istio.io/release/examples-bookinfo-reviews-v3:1.20.3"
    apply(cluster, ns, _release("reviews-v4", {"version": "v4", "image": image}, traffic={"weight": 30}))
    wait_for(lambda: _reviews_weights(cluster, ns) == [{"v1": 70, "v4": 30}], timeout=90, what="v1/v4 70/30")
    assert_istiod_routes_say_status(cluster, ns, "reviews-v4")
    versions = _status(cluster, ns, "reviews-v4")["versions"]
    assert [(v["deployment"], v["managed"]) for v in versions] == [("reviews-v1", False), ("reviews-v4", True)]

    patch_spec(cluster, ns, "reviews-v4", {"abort": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews-v4", "Aborted"), timeout=60, what="Aborted")
    assert get(cluster, "deployment", "reviews-v4", ns) is None
    for kind, original in originals.items():
        assert as_applied(get(cluster, kind, "reviews", ns)) == original, f"Istio's {kind} is not as it was"


def test_istios_route_for_one_user_to_v2_is_kept_through_a_release_of_v3(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    # jason goes to v2, everyone else to v3: release v3 -> v4 by image, then abort.
    _deploy_istio_bookinfo(cluster, ns, "virtual-service-reviews-jason-v2-v3.yaml")
    original = as_applied(get(cluster, "virtualservice", "reviews", ns))
    start_operator()

    image = "registry.istio.io/release/examples-bookinfo-reviews-v3:1.20.3"
    release = _release("reviews-v4", {"version": "v4", "image": image}, traffic={"weight": 30})
    release["spec"]["stable"] = {"version": "v3"}
    apply(cluster, ns, release)
    wait_for(
        lambda: _reviews_weights(cluster, ns) == [{"v2": 100}, {"v3": 70, "v4": 30}],
        timeout=90,
        what="jason kept, v3/v4 70/30",
    )
    http = get(cluster, "virtualservice", "reviews", ns)["spec"]["http"]  # type: ignore[index]
    assert http[0] == original["spec"]["http"][0], "the user's route for jason changed"
    assert_istiod_routes_say_status(cluster, ns, "reviews-v4")

    patch_spec(cluster, ns, "reviews-v4", {"abort": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews-v4", "Aborted"), timeout=60, what="Aborted")
    assert as_applied(get(cluster, "virtualservice", "reviews", ns)) == original
