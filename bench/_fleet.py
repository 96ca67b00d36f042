"""Shared pieces of the control-loop and scale benchmarks.

A fleet is N Bookinfo-like services (a Service and its stable ``v1`` Deployment) spread over a
few namespaces, each with one CanaryRelease to ``v2``. The benchmarks run on their own kwok
cluster, started with the API server's audit log on (so every write the operator makes can be
counted) and without client QPS limits (so kube-controller-manager creates 2,000 pods in
seconds, not minutes).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster import Cluster
from devcluster.cluster import FAKE_NODE_NAME
from istio_canary.models.marks import GROUP, ISTIO_GROUP, ISTIO_VERSION, PLURAL, VERSION
from kubernetes import client
from kubernetes.client.rest import ApiException

__all__ = [
    "BENCH_USER_AGENT",
    "AuditWrite",
    "BenchCluster",
    "Fleet",
    "OperatorProcess",
    "Sample",
    "WeightWatcher",
    "canary_weight",
    "operator_writes",
    "percentiles",
    "read_audit_writes",
]

BENCH_USER_AGENT = "istio-canary-bench"
"""The benchmark's own requests carry this User-Agent, so the audit log tells them apart."""

# Writes only, at Metadata level: enough to count who wrote what, small enough to read back.
_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
"""
_WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class BenchCluster(Cluster):
    """A devcluster with the audit log on, no client QPS limits, and ``fake_nodes`` pod-holding nodes."""

    fake_nodes: int = 2

    @property
    def audit_policy(self) -> Path:
        return self.state_dir / f"{self.name}-audit-policy.yaml"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "kwok" / "clusters" / self.name / "logs" / "audit.log"

    def _create_args(self) -> list[str]:
        self.audit_policy.write_text(_AUDIT_POLICY)
        return [
            *super()._create_args(),
            "--disable-qps-limits",
            f"--kube-audit-policy={self.audit_policy}",
        ]

    def ensure_fake_node(self) -> None:
        super().ensure_fake_node()
        base = json.loads(self.kubectl("get", "node", FAKE_NODE_NAME, "-o", "json").stdout)
        for i in range(1, self.fake_nodes):
            name = f"kwok-node-{i}"
            if self.kubectl("get", "node", name, check=False).returncode == 0:
                continue
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": base["metadata"]["annotations"],
                    "labels": {**base["metadata"]["labels"], "kubernetes.io/hostname": name},
                },
                "status": {
                    "allocatable": base["status"]["allocatable"],
                    "capacity": base["status"]["capacity"],
                },
            }
            self.kubectl("apply", "-f", "-", input=json.dumps(node))

    def bench_client(self) -> client.ApiClient:
        api: client.ApiClient = self.api_client()
        api.user_agent = BENCH_USER_AGENT
        # Many threads share this client: one connection each.
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
        return api


@dataclass(frozen=True)
class AuditWrite:
    time: float
    user_agent: str
    verb: str
    resource: str
    namespace: str
    name: str


def read_audit_writes(path: Path, *, offset: int = 0) -> tuple[list[AuditWrite], int]:
    """Write requests in the audit log from byte ``offset`` on, and the offset after the last full line."""
    if not path.exists():
        return [], offset
    out: list[AuditWrite] = []
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("stage") != "ResponseComplete" or ev.get("verb") not in _WRITE_VERBS:
            continue
        ref = ev.get("objectRef") or {}
        resource = ref.get("resource", "") + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        stamp = ev.get("stageTimestamp", "")
        out.append(
            AuditWrite(
                time=_rfc3339(stamp),
                user_agent=ev.get("userAgent", ""),
                verb=ev["verb"],
                resource=resource,
                namespace=ref.get("namespace", ""),
                name=ref.get("name", ""),
            )
        )
    return out, offset + end


def _rfc3339(stamp: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0


def operator_writes(writes: Iterable[AuditWrite], namespaces: Sequence[str]) -> list[AuditWrite]:
    """Writes made by the operator (kopf or its kubernetes client) in the fleet's namespaces."""
    wanted = set(namespaces)
    return [
        w
        for w in writes
        if w.namespace in wanted
        and not w.user_agent.startswith((BENCH_USER_AGENT, "kube-", "kwok", "kubectl"))
    ]


# -- the fleet ------------------------------------------------------------------------------------


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
                self.core.create_namespace({"metadata": {"name": ns}})
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
                    try:
                        self.custom.patch_namespaced_custom_object(
                            GROUP,
                            VERSION,
                            ns,
                            PLURAL,
                            obj["metadata"]["name"],
                            [{"op": "remove", "path": "/metadata/finalizers"}],
                        )
                    except ApiException:
                        pass
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

    def _parallel(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(fn, items))


def _create(fn: Any) -> None:
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


# -- watching VirtualServices --------------------------------------------------------------------


class WeightWatcher:
    """Watches VirtualServices in some namespaces and remembers when each showed each canary weight."""

    def __init__(self, api: client.ApiClient, namespaces: Sequence[str]) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespaces = list(namespaces)
        self.seen: dict[tuple[str, str], list[tuple[float, int | None]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Barrier(len(self.namespaces) + 1)
        self._threads = [
            threading.Thread(target=self._watch, args=(ns,), daemon=True) for ns in self.namespaces
        ]

    def start(self) -> WeightWatcher:
        for t in self._threads:
            t.start()
        self._ready.wait(timeout=60)
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self, namespace: str) -> None:
        from kubernetes import watch

        listed = self.custom.list_namespaced_custom_object(
            ISTIO_GROUP, ISTIO_VERSION, namespace, "virtualservices"
        )
        rv = listed["metadata"]["resourceVersion"]
        self._ready.wait(timeout=60)
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(
                    self.custom.list_namespaced_custom_object,
                    ISTIO_GROUP,
                    ISTIO_VERSION,
                    namespace,
                    "virtualservices",
                    resource_version=rv,
                    timeout_seconds=60,
                ):
                    now = time.monotonic()
                    obj = ev["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    with self._lock:
                        self.seen.setdefault((namespace, obj["metadata"]["name"]), []).append(
                            (now, canary_weight(obj))
                        )
                    if self._stop.is_set():
                        break
            except ApiException as err:
                if err.status == 410:  # expired resourceVersion: start from now
                    rv = self.custom.list_namespaced_custom_object(
                        ISTIO_GROUP, ISTIO_VERSION, namespace, "virtualservices"
                    )["metadata"]["resourceVersion"]
                else:
                    raise

    def first_seen(self, key: tuple[str, str], weight: int, *, after: float) -> float | None:
        with self._lock:
            for t, w in self.seen.get(key, []):
                if w == weight and t >= after:
                    return t
        return None

    def wait_all(
        self, wanted: dict[tuple[str, str], int], *, after: float, timeout: float
    ) -> dict[tuple[str, str], float]:
        """First time each release's VirtualService showed its wanted weight (missing ones omitted)."""
        deadline = time.monotonic() + timeout
        found: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:
            for key, weight in wanted.items():
                if key not in found:
                    t = self.first_seen(key, weight, after=after)
                    if t is not None:
                        found[key] = t
            if len(found) == len(wanted):
                break
            time.sleep(0.01)
        return found


# -- the operator process ------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss_mb: float
    cpu_s: float


class OperatorProcess:
    """``istio-canary-operator run`` in a subprocess, with its RSS and CPU time sampled every 0.5 s."""

    def __init__(
        self,
        *,
        kubeconfig: str,
        namespaces: Sequence[str],
        log_path: Path,
        extra: Sequence[str] = (),
        traced: bool = False,
    ) -> None:
        self.traced = traced
        self.kubeconfig, self.namespaces, self.log_path, self.extra = (
            kubeconfig,
            list(namespaces),
            log_path,
            list(extra),
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self.started = 0.0

    def start(self) -> OperatorProcess:
        exe = Path(sys.executable).parent / "istio-canary-operator"
        command = [sys.executable, str(Path(__file__).parent / "_traced_operator.py")]
        scope = [arg for ns in self.namespaces for arg in ("--namespace", ns)]
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                *(command if self.traced else [str(exe)]),
                "run",
                *scope,
                "--kubeconfig",
                self.kubeconfig,
                "--log-format",
                "json",
                *self.extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        self._sampler.start()
        return self

    def _sample_loop(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        assert self.proc is not None
        while not self._stop.is_set() and self.proc.poll() is None:
            try:
                status = Path(f"/proc/{self.proc.pid}/status").read_text()
                stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
            except OSError:
                break
            rss_kb = next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
            )
            fields = stat.rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            self.samples.append(
                Sample(t=time.monotonic() - self.started, rss_mb=rss_kb / 1024, cpu_s=cpu)
            )
            self._stop.wait(0.5)

    def peak_hwm_mb(self) -> float:
        """The kernel's own RSS high-water mark (VmHWM), which catches peaks between samples."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return (
            next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
            / 1024
        )

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds used between two sample times (seconds since start)."""
        inside = [s for s in self.samples if t0 <= s.t <= t1]
        return inside[-1].cpu_s - inside[0].cpu_s if len(inside) >= 2 else 0.0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if hasattr(self, "_log"):
            self._log.close()


# -- numbers ---------------------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of ``values`` (nearest rank), NaN when empty."""
    if not values:
        nan = float("nan")
        return {"n": 0, "p50": nan, "p95": nan, "p99": nan, "max": nan}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(-(-p * len(ordered) // 100)) - 1))]

    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
    }
