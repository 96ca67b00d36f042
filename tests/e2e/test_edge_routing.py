"""Every path into the Service is split: a gateway's VirtualService in another namespace, the mesh's, a delegate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from devcluster import Cluster

from tests.e2e.helpers import (
    EXAMPLES,
    apply,
    as_applied,
    deploy_bookinfo,
    get,
    patch_spec,
    release_phase,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import gateway_weights
from tests.e2e.releases import ReleaseStarter

MARKS = ("releases.istio-canary.io/release", "releases.istio-canary.io/original-spec")
IMAGE = "kubesphere/examples-bookinfo-productpage-v1:1.13.0"


@pytest.fixture
def gateway_namespace(cluster: Cluster, namespace: str) -> Iterator[str]:
    name = f"{namespace[:50]}-gw"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _routing(ns: str, gw: str) -> list[dict[str, Any]]:
    fqdn = f"productpage.{ns}.svc.cluster.local"
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "bookinfo-gateway", "namespace": gw},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["bookinfo.example.com"]}
            ],
        },
    }
    edge = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "bookinfo", "namespace": gw},
        "spec": {
            "hosts": ["bookinfo.example.com"], "gateways": ["bookinfo-gateway"],
            "http": [
                {"match": [{"uri": {"prefix": "/api/v1"}}], "delegate": {"name": "productpage-api", "namespace": ns}},
                {"match": [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}}],
                 "route": [{"destination": {"host": fqdn, "port": {"number": 9080}}}], "timeout": "10s"},
            ],
        },
    }
    delegate = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "productpage-api", "namespace": ns},
        "spec": {
            "http": [
                {
                    "match": [{"uri": {"prefix": "/api/v1/products"}}],
                    "route": [{"destination": {"host": "productpage"}}],
                }
            ]
        },
    }
    mesh = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "productpage", "namespace": ns},
        "spec": {
            "hosts": ["productpage"],
            "http": [{"route": [{"destination": {"host": "productpage"}}], "retries": {"attempts": 2}}],
        },
    }
    return [gateway, edge, delegate, mesh]


OBJECTS = (("gw", "bookinfo"), ("ns", "productpage-api"), ("ns", "productpage"))


def _objects(cluster: Cluster, ns: str, gw: str) -> dict[str, dict[str, Any] | None]:
    where = {"gw": gw, "ns": ns}
    return {f"{where[w]}/{name}": get(cluster, "virtualservice", name, where[w]) for w, name in OBJECTS}


def _split(obj: dict[str, Any] | None) -> list[dict[str, int]]:
    """The weights of the routes to productpage (the delegate route of the root has none)."""
    return [w for w in route_weights(obj or {}) if w and all(s.startswith("v") for s in w)]


def _release(gw: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "releases.istio-canary.io/v1alpha1", "kind": "CanaryRelease", "metadata": {"name": "productpage"},
        "spec": {
            "service": "productpage", "stable": {"version": "v1"}, "canary": {"version": "v2", "image": IMAGE},
            "traffic": {"weight": 30}, "routing": {"virtualServices": [{"name": "bookinfo", "namespace": gw}]}, **spec,
        },
    }


def _start(progressing_release: ReleaseStarter, gw: str) -> dict[str, dict[str, Any]]:
    """The user's three VirtualServices, then the release over them; returns them as applied."""
    cluster, ns = progressing_release.cluster, progressing_release.namespace
    originals: dict[str, dict[str, Any]] = {}

    def users_routing() -> None:
        for obj in _routing(ns, gw):
            apply(cluster, obj["metadata"]["namespace"], obj)
        originals.update({key: as_applied(obj) for key, obj in _objects(cluster, ns, gw).items()})

    progressing_release(_release(gw), operator_args=("--namespace", gw), prepare=users_routing, timeout=120)
    wait_for(lambda: all(_split(o) == [{"v1": 70, "v2": 30}] for o in _objects(cluster, ns, gw).values()),
             timeout=120, what="all three VirtualServices at 70/30")
    return originals


def _status_routing(cluster: Cluster, ns: str) -> list[tuple[str, int, int]]:
    status = (get(cluster, "canaryrelease", "productpage", ns) or {}).get("status") or {}
    return [(f"{r['namespace']}/{r['name']}", r["stable"], r["canary"]) for r in status.get("routing") or []]


def test_a_gateway_a_mesh_and_a_delegate_virtual_service_are_all_split_and_restored_exactly_on_abort(
    cluster: Cluster, namespace: str, gateway_namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns, gw = namespace, gateway_namespace
    originals = _start(progressing_release, gw)
    now = _objects(cluster, ns, gw)
    root = now[f"{gw}/bookinfo"]
    assert root is not None
    assert root["spec"]["http"][0] == originals[f"{gw}/bookinfo"]["spec"]["http"][0], (
        "the root's delegate route changed"
    )
    assert root["spec"]["http"][1]["match"] == originals[f"{gw}/bookinfo"]["spec"]["http"][1]["match"]
    assert root["spec"]["hosts"] == ["bookinfo.example.com"] and root["spec"]["gateways"] == ["bookinfo-gateway"]
    wait_for(lambda: sorted(_status_routing(cluster, ns)) == sorted(
        [(f"{ns}/productpage", 70, 30), (f"{gw}/bookinfo", 70, 30), (f"{ns}/productpage-api", 70, 30)]
    ), what="status lists the three objects at 70/30")

    patch_spec(cluster, ns, "productpage", {"abort": True})
    wait_for(lambda: release_phase(cluster, ns, "productpage", "Aborted"), timeout=60, what="Aborted")
    for key, obj in _objects(cluster, ns, gw).items():
        assert as_applied(obj) == originals[key], f"{key} is not as it was"


def test_completion_hands_every_split_object_over(
    cluster: Cluster, namespace: str, gateway_namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns, gw = namespace, gateway_namespace
    _start(progressing_release, gw)
    patch_spec(cluster, ns, "productpage", {"takeOver": "v2"})
    wait_for(
        lambda: all(_split(o) == [{"v2": 100}] for o in _objects(cluster, ns, gw).values()), what="v2 100% everywhere"
    )
    patch_spec(cluster, ns, "productpage", {"offline": True})
    wait_for(lambda: release_phase(cluster, ns, "productpage", "Completed"), timeout=60, what="Completed")

    def marks() -> dict[str, list[str]]:
        found = {}
        for key, obj in _objects(cluster, ns, gw).items():
            meta = (obj or {}).get("metadata") or {}
            found[key] = [m for m in MARKS if m in (meta.get("labels") or {}) or m in (meta.get("annotations") or {})]
        return found

    wait_for(lambda: not any(marks().values()), what=f"every object handed over: {json.dumps(marks())}")
    assert all(_split(o) == [{"v2": 100}] for o in _objects(cluster, ns, gw).values())


def test_a_second_release_that_wants_a_gateway_virtual_service_another_holds_fails_and_nothing_moves(
    cluster: Cluster, namespace: str, gateway_namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns, gw = namespace, gateway_namespace
    _start(progressing_release, gw)
    before = get(cluster, "virtualservice", "bookinfo", gw)
    details = {
        "apiVersion": "releases.istio-canary.io/v1alpha1", "kind": "CanaryRelease", "metadata": {"name": "details"},
        "spec": {
            "service": "details", "stable": {"version": "v1"},
            "canary": {"version": "v2", "image": "kubesphere/examples-bookinfo-details-v1:1.13.0"},
            "traffic": {"weight": 50}, "routing": {"virtualServices": [{"name": "bookinfo", "namespace": gw}]},
        },
    }
    apply(cluster, ns, details)
    failed = wait_for(lambda: release_phase(cluster, ns, "details", "Failed"), timeout=60, what="details Failed")
    assert "belongs to release 'productpage'" in failed["status"]["message"]
    assert get(cluster, "deployment", "details-v2", ns) is None
    after = get(cluster, "virtualservice", "bookinfo", gw)
    assert after is not None and before is not None and after["spec"] == before["spec"]


def test_the_gateway_example_splits_the_requests_entering_through_the_gateway(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    start_operator()
    apply(cluster, ns, (EXAMPLES / "productpage-gateway.yaml").read_text())
    wait_for(lambda: _split(get(cluster, "virtualservice", "bookinfo", ns)) == [{"v1": 80, "v2": 20}],
             timeout=120, what="the gateway's VirtualService at 80/20")
    gateway = get(cluster, "virtualservice", "bookinfo", ns)
    assert gateway is not None and gateway["spec"]["gateways"] == ["bookinfo-gateway"]
    assert len(gateway["spec"]["http"][0]["match"]) == 5, "the gateway route's matches are kept"
    wait_for(lambda: (f"{ns}/bookinfo", 80, 20) in _status_routing(cluster, ns), what="status lists the gateway's")
    # istiod's own translation for the ingress gateway's proxy: the requests entering through it
    # are split as the release says (each of the gateway route's five matches carries the split).
    wait_for(lambda: gateway_weights(cluster, ns, host="bookinfo.example.com") == {"v1": 5 * 80, "v2": 5 * 20},
             timeout=60, what="istiod's gateway routes at 80/20")

    # A NodePort opens a path around Envoy: said in a condition (and a Warning Event).
    cluster.kubectl("patch", "service", "productpage", "-n", ns, "--type=merge", "-p", '{"spec":{"type":"NodePort"}}')

    def mesh_only() -> dict[str, Any] | None:
        status = (get(cluster, "canaryrelease", "productpage", ns) or {}).get("status") or {}
        return next(
            (c for c in status.get("conditions") or [] if c["type"] == "MeshOnly" and c["status"] == "False"), None
        )

    condition = wait_for(mesh_only, timeout=60, what="MeshOnly=False after the Service became a NodePort")
    assert "type NodePort" in condition["message"]
