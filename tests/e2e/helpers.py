"""Small helpers for e2e tests: waiting, reading objects, and the routing invariants."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from devcluster import Cluster

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "bookinfo"


def wait_for(fn: Callable[[], T | None], *, timeout: float = 60, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")


def get(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    return dict(json.loads(proc.stdout))


def apply(cluster: Cluster, namespace: str, manifest: str | dict[str, Any]) -> None:
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def patch_spec(cluster: Cluster, namespace: str, name: str, patch: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch", "canaryrelease", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": patch})
    )


def release_phase(cluster: Cluster, namespace: str, name: str, phase: str) -> dict[str, Any] | None:
    obj = get(cluster, "canaryrelease", name, namespace)
    if obj is not None and obj.get("status", {}).get("phase") == phase:
        return obj
    return None


def route_weights(vs: dict[str, Any]) -> list[dict[str, int]]:
    """For every http/tcp route: subset -> weight (a lone destination has 100)."""
    out = []
    for kind in ("http", "tcp"):
        for route in vs.get("spec", {}).get(kind) or []:
            dests = route.get("route") or []
            weights: dict[str, int] = {}
            for d in dests:
                subset = d["destination"].get("subset", "")
                weights[subset] = weights.get(subset, 0) + int(d.get("weight", 100 if len(dests) == 1 else 0))
            out.append(weights)
    return out


def assert_routing_invariants(cluster: Cluster, namespace: str, service: str) -> None:
    """Weights add up to 100, and no route points at a subset without ready pods or a DR entry."""
    vs = get(cluster, "virtualservice", service, namespace)
    if vs is None:
        return
    dr = get(cluster, "destinationrule", service, namespace)
    subsets = {s["name"]: s["labels"] for s in (dr or {}).get("spec", {}).get("subsets", [])}
    deployments = json.loads(cluster.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
    for weights in route_weights(vs):
        assert sum(weights.values()) == 100, weights
        for subset, weight in weights.items():
            if weight == 0:
                continue
            assert subset in subsets, f"route to subset {subset} missing from the DestinationRule"
            labels = subsets[subset]
            ready = sum(
                d.get("status", {}).get("readyReplicas", 0)
                for d in deployments
                if all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
            )
            assert ready > 0, f"weight {weight} to subset {subset} which has no ready pod"


def versioned_deployment(app: str, version: str, *, image: str, name: str | None = None) -> dict[str, Any]:
    """A one-container Deployment labelled app=<app>, version=<version>, as Bookinfo's are."""
    labels = {"app": app, "version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name or f"{app}-{version}", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": app, "image": image}]}},
        },
    }


def example_release(example: str = "canary-weight.yaml", **spec: Any) -> dict[str, Any]:
    """A CanaryRelease from examples/bookinfo with some spec fields replaced."""
    body = yaml.safe_load((EXAMPLES / example).read_text())
    body["spec"].update(spec)
    return dict(body)


def deploy_bookinfo(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, (EXAMPLES / "bookinfo.yaml").read_text())
    wait_for(
        lambda: (get(cluster, "deployment", "reviews-v1", namespace) or {}).get("status", {}).get("readyReplicas"),
        timeout=90,
        what="reviews-v1 ready",
    )


# Written by the API server (and by the controllers): not part of what the user applied.
SERVER_FIELDS = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")


def as_applied(obj: dict[str, Any] | None) -> dict[str, Any]:
    """An object without what the server writes: what a byte-for-byte comparison looks at."""
    assert obj is not None
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_FIELDS}
    return {"metadata": meta, "spec": obj["spec"]}
