"""The fleet the control-loop and scale benchmarks run on.

A fleet is N Bookinfo-like services (a Service and its stable ``v1`` Deployment) spread over a
few namespaces, each with one CanaryRelease to ``v2``. The benchmarks run it on their own kwok
cluster (``_cluster.BenchCluster``), count the operator's writes in its audit log
(``_audit``), watch the VirtualServices (``_watcher``) and sample the operator process
(``_process``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from istio_canary.models.marks import GROUP, ISTIO_GROUP, ISTIO_VERSION, PLURAL, VERSION
from kubernetes import client
from kubernetes.client.rest import ApiException

__all__ = ["Fleet", "canary_weight", "service_name"]


def service_name(i: int) -> str:
    return f"svc-{i:04d}"


@dataclass
class Fleet:
    """N services with one CanaryRelease each, ``per_namespace`` per namespace."""

    api: client.ApiClient
    size: int
    per_namespace: int
    prefix: str = "bench"
    threads: int = 8
    core: client.CoreV1Api = field(init=False)
    apps: client.AppsV1Api = field(init=False)
    custom: client.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    @property
    def namespaces(self) -> list[str]:
        count = -(-self.size // self.per_namespace)
        return [f"{self.prefix}-{j:02d}" for j in range(count)]

    def releases(self) -> list[tuple[str, str]]:
        """(namespace, name) of every release."""
        return [
            (self.namespaces[i // self.per_namespace], service_name(i)) for i in range(self.size)
        ]

    # -- setup ----------------------------------------------------------------------------------

    def create(self, *, weight: int = 10) -> None:
        for ns in self.namespaces:
            try:
                self.core.create_namespace({"metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}})
            except ApiException as err:
                if err.status != 409:
                    raise
        self._parallel(lambda ref: self._create_workload(*ref), self.releases())
        self._parallel(lambda ref: self._create_release(*ref, weight=weight), self.releases())

    def _create_workload(self, namespace: str, name: str) -> None:
        labels = {"app": name, "version": "v1"}
        service = {
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                # Headless: kwok's default Service range has room for only a few hundred IPs.
                "clusterIP": "None",
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 9080, "targetPort": 9080}],
            },
        }
        deployment = {
            "metadata": {"name": f"{name}-v1", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "kubesphere/examples-bookinfo-reviews-v1:1.13.0",
                                "ports": [{"containerPort": 9080}],
                            }
                        ]
                    },
                },
            },
        }
        _create(
            lambda: self.core.create_namespaced_service(namespace, service, _preload_content=False)
        )
        _create(
            lambda: self.apps.create_namespaced_deployment(
                namespace, deployment, _preload_content=False
            )
        )

    def _create_release(self, namespace: str, name: str, *, weight: int) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CanaryRelease",
            "metadata": {"name": name},
            "spec": {
                "service": name,
                "stable": {"version": "v1"},
                "canary": {
                    "version": "v2",
                    "image": "kubesphere/examples-bookinfo-reviews-v2:1.13.0",
                },
                "strategy": "Canary",
                "traffic": {"weight": weight},
            },
        }
        _create(
            lambda: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body, _preload_content=False
            )
        )

    def delete(self) -> None:
        """Delete the namespaces without waiting (the operator must be stopped first: releases have finalizers)."""
        for ns in self.namespaces:
            # Finalizers of releases no operator will handle any more would keep the namespace forever.
            try:
                items = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)[
                    "items"
                ]
            except ApiException:
                items = []
            for obj in items:
                if obj["metadata"].get("finalizers"):
                    with contextlib.suppress(ApiException):
                        self.custom.patch_namespaced_custom_object(
                            GROUP,
                            VERSION,
                            ns,
                            PLURAL,
                            obj["metadata"]["name"],
                            [{"op": "remove", "path": "/metadata/finalizers"}],
                        )
            try:
                self.core.delete_namespace(ns)
            except ApiException as err:
                if err.status != 404:
                    raise

    # -- reading --------------------------------------------------------------------------------

    def phases(self) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for ns in self.namespaces:
            for obj in self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)[
                "items"
            ]:
                out[(ns, obj["metadata"]["name"])] = (obj.get("status") or {}).get("phase", "")
        return out

    def wait_for_phase(self, phase: str, *, timeout: float, report_every: float = 10.0) -> float:
        """Seconds until every release shows ``phase``; raises TimeoutError with a count otherwise."""
        started = time.monotonic()
        last_report = started
        while True:
            seen = self.phases()
            done = sum(1 for p in seen.values() if p == phase)
            if done == self.size:
                return time.monotonic() - started
            now = time.monotonic()
            if now - started > timeout:
                raise TimeoutError(f"{done}/{self.size} releases {phase} after {timeout:.0f} s")
            if now - last_report >= report_every:
                last_report = now
                print(
                    f"  ... {done}/{self.size} {phase} after {now - started:.0f} s", file=sys.stderr
                )
            time.sleep(0.5)

    def canary_weights(self) -> dict[tuple[str, str], int | None]:
        out: dict[tuple[str, str], int | None] = {}
        for ns in self.namespaces:
            for vs in self.custom.list_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, ns, "virtualservices"
            )["items"]:
                out[(ns, vs["metadata"]["name"])] = canary_weight(vs)
        return out

    def resource_versions(self) -> dict[str, str]:
        """kind/namespace/name -> resourceVersion of every object the operator could write."""
        out: dict[str, str] = {}
        for ns in self.namespaces:
            lists: dict[str, list[dict[str, Any]]] = {
                "CanaryRelease": self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL
                )["items"],
                "VirtualService": self.custom.list_namespaced_custom_object(
                    ISTIO_GROUP, ISTIO_VERSION, ns, "virtualservices"
                )["items"],
                "DestinationRule": self.custom.list_namespaced_custom_object(
                    ISTIO_GROUP, ISTIO_VERSION, ns, "destinationrules"
                )["items"],
                "Deployment": json.loads(
                    self.apps.list_namespaced_deployment(ns, _preload_content=False).data
                )["items"],
            }
            for kind, items in lists.items():
                for obj in items:
                    out[f"{kind}/{ns}/{obj['metadata']['name']}"] = obj["metadata"][
                        "resourceVersion"
                    ]
        return out

    def ready_stable(self) -> int:
        """How many stable Deployments have a ready pod."""
        ready = 0
        for ns in self.namespaces:
            items = json.loads(
                self.apps.list_namespaced_deployment(ns, _preload_content=False).data
            )["items"]
            ready += sum(
                1
                for d in items
                if d["metadata"]["name"].endswith("-v1")
                and (d.get("status") or {}).get("readyReplicas")
            )
        return ready

    def set_weight(self, namespace: str, name: str, weight: int) -> float:
        """Merge-patch ``spec.traffic.weight``; returns the monotonic time the PATCH returned."""
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"spec": {"traffic": {"weight": weight}}},
            _content_type="application/merge-patch+json",
        )
        return time.monotonic()

    def _parallel(
        self, fn: Callable[[tuple[str, str]], None], items: Sequence[tuple[str, str]]
    ) -> None:
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(fn, items))


def _create(fn: Callable[[], object]) -> None:
    try:
        fn()
    except ApiException as err:
        if err.status != 409:  # already there from an earlier run: reuse it
            raise


def canary_weight(vs: dict[str, Any]) -> int | None:
    """The weight of subset ``v2`` in the first http route, None when the route has no v2."""
    for route in (vs.get("spec") or {}).get("http") or []:
        for dest in route.get("route") or []:
            if dest.get("destination", {}).get("subset") == "v2":
                return int(dest.get("weight", 0))
    return None
