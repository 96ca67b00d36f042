"""The demo's main flow against any cluster: Bookinfo, a 30% canary, take over, offline.

``run_demo`` needs a cluster that has the CanaryRelease and Istio CRDs, a running Prometheus,
and a namespace name. It starts the mesh simulator in this process and the operator as a
subprocess. With the target's istiod (the local control plane runs one) the simulator routes
every request by the Envoy routes istiod generates, and the demo prints those routes beside
the split; without it the simulator reads the VirtualServices itself. It stops both before
it returns or raises (also on Ctrl-C). Creating the cluster and Prometheus, and removing
them, is ``demo.py``'s job, so that a test can run this flow on the cluster it already has.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo_display import DemoDisplay, Split, split_table
from devcluster import PrometheusServer
from istio_canary.models.marks import GROUP, PLURAL, VERSION
from meshsim.envoy_routes import parse_cluster_name, weighted_clusters
from meshsim.routers import EnvoyRouter
from meshsim.server import SimulatorServer
from meshsim.simulator import Simulator
from rich.console import Console

__all__ = ["HERE", "DemoError", "DemoResult", "Target", "run_demo"]

HERE = Path(__file__).resolve().parent
RELEASE = "reviews"
SERVICE = "reviews"
STABLE, CANARY = "v1", "v2"
STEPS = 6


class DemoError(RuntimeError):
    """The demo could not go on; the message says what to look at."""


@dataclass(frozen=True)
class Target:
    """A cluster reached through a kubeconfig (the local control plane or the current one)."""

    kubeconfig: str
    kubectl_binary: str = "kubectl"
    context: str | None = None
    istiod: str | None = None
    """istiod's plaintext xDS address (host:port), when the demo can reach it."""

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        context = ["--context", self.context] if self.context else []
        proc = subprocess.run(  # noqa: PLW1510 - checked below
            [self.kubectl_binary, "--kubeconfig", self.kubeconfig, *context, *args],
            input=input, text=True, capture_output=True, timeout=120,
        )
        if check and proc.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed:\n{proc.stderr.strip()}")
        return proc.stdout

    def api_client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig, context=self.context)


@dataclass
class DemoResult:
    """What the demo measured: the split at 30%, the split after take over, every phase seen."""

    split: Split | None = None
    taken_over: Split | None = None
    phases: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Release:
    """Reads and patches the demo's CanaryRelease; prints each phase change as it is seen."""

    def __init__(self, target: Target, namespace: str, display: DemoDisplay, result: DemoResult) -> None:
        from kubernetes import client

        self._api = client.CustomObjectsApi(target.api_client())
        self._apps = client.AppsV1Api(self._api.api_client)
        self.namespace, self._display, self._result = namespace, display, result

    def get(self) -> dict[str, Any]:
        body: dict[str, Any] = self._api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, RELEASE
        )
        return body

    def status(self) -> dict[str, Any]:
        status = self.get().get("status") or {}
        phase = status.get("phase")
        if phase:
            if not self._result.phases or self._result.phases[-1] != phase:
                self._result.phases.append(phase)
            self._display.phase(phase, status.get("message", ""))
        return dict(status)

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self._api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, RELEASE, {"spec": spec}
        )

    def ready_replicas(self, deployment: str) -> int:
        body = self._apps.read_namespaced_deployment_status(deployment, self.namespace)
        return int(body.status.ready_replicas or 0)

    def wait(self, check: Callable[[dict[str, Any]], bool], *, what: str, timeout: float = 90) -> dict[str, Any]:
        """Poll the status until ``check`` holds; a Failed phase or the deadline is a DemoError."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if check(status):
                return status
            if status.get("phase") == "Failed":
                raise DemoError(f"the release failed: {status.get('message')}")
            if time.monotonic() > deadline:
                raise DemoError(f"no {what} after {timeout:.0f} s; status: {json.dumps(status)}")
            time.sleep(0.3)


def _phase_is(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status.get("phase") == phase


@contextmanager
def _operator(target: Target, *, namespace: str, prometheus_url: str, log_path: Path) -> Iterator[None]:
    """``istio-canary-operator run`` for the namespace, stopped with SIGTERM on the way out."""
    exe = Path(sys.executable).parent / "istio-canary-operator"
    args = [str(exe), "run", "--namespace", namespace, "--kubeconfig", target.kubeconfig,
            "--prometheus-url", prometheus_url, "--metrics-interval", "2", "--metrics-window", "10",
            "--log-format", "json"]
    if target.context:
        args += ["--context", target.context]
    with open(log_path, "ab") as log:
        # Its own process group: a Ctrl-C at the terminal reaches the demo, which then stops
        # the operator in order (after the release is deleted) instead of both dying at once.
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(0.5)
            if proc.poll() is not None:
                raise DemoError(f"the operator exited at start; see {log_path}")
            yield
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def _simulator(target: Target, *, namespace: str, prometheus: PrometheusServer) -> Iterator[Simulator]:
    binary = HERE.parents[1] / ".bin" / "istio-xds-routes"
    sim = Simulator(target.api_client(), namespaces=[namespace], seed=2024,
                    istiod=target.istiod, xds_routes_binary=str(binary) if binary.exists() else None)
    server = SimulatorServer(sim)
    server.start_in_thread()
    job = f"meshsim-{namespace}"
    prometheus.add_scrape_target(job, f"127.0.0.1:{server.port}")
    try:
        yield sim
    finally:
        prometheus.remove_scrape_target(job)
        server.stop_in_thread()


def _istiod_weights(sim: Simulator, namespace: str) -> dict[str, int]:
    """subset -> weight of the catch-all route istiod generated for the Service ({}: not by istiod)."""
    config = sim.router.config(namespace) if isinstance(sim.router, EnvoyRouter) else None
    vhost = config.virtual_host(host=f"{SERVICE}.{namespace}.svc.cluster.local", port=9080) if config else None
    routes = (vhost or {}).get("routes") or []
    if not routes:
        return {}
    clusters = weighted_clusters(routes[-1].get("route") or {})
    return {parse_cluster_name(name).subset or "-": weight for name, weight in clusters if weight > 0}


def _wait_for_routes(sim: Simulator, release: _Release, *, timeout: float = 10.0) -> None:
    """Until the simulator routes by an istiod push that has the weights the status reports."""
    if not isinstance(sim.router, EnvoyRouter):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        versions = release.status().get("versions", [])
        wanted = {v["version"]: int(v.get("weight", 0)) for v in versions if v.get("weight")}
        if wanted and _istiod_weights(sim, release.namespace) == wanted:
            return
        time.sleep(0.1)
    raise DemoError(f"istiod's routes did not reach the simulator's weights in {timeout:.0f} s")


def _served(sim: Simulator, namespace: str) -> dict[str, int]:
    counts = sim.stats()["services"].get(f"{namespace}/{SERVICE}", {}).get("served", {})
    return {str(k): int(v) for k, v in counts.items()}


def _watch_split(
    sim: Simulator, release: _Release, display: DemoDisplay, *, seconds: float, title: str
) -> Split:
    """Count the requests each version serves for ``seconds``, redrawing the table as they come."""
    # No request of the window may be routed as before the last change: wait for istiod's push
    # of the weights the status reports (or, without istiod, read the VirtualService now).
    _wait_for_routes(sim, release)
    sim.refresh()
    sim.reset_stats()
    started = time.monotonic()
    split = Split(served={}, seconds=0.0)
    while True:
        elapsed = time.monotonic() - started
        status = release.status()
        weights = {v["version"]: int(v.get("weight", 0)) for v in status.get("versions", [])}
        metrics = {v["version"]: v.get("metrics") or {} for v in status.get("versions", [])}
        split = Split(served=_served(sim, release.namespace), seconds=elapsed, weights=weights, metrics=metrics,
                      routed_by=_istiod_weights(sim, release.namespace))
        display.show(split_table(split, versions=(STABLE, CANARY), title=f"{title} ({elapsed:4.1f} s)"))
        if elapsed >= seconds:
            break
        time.sleep(0.5)
    display.show(None)
    display.console.print(split_table(split, versions=(STABLE, CANARY), title=title))
    display.note(split.summary((STABLE, CANARY)))
    return split


def _deploy_bookinfo(target: Target, release: _Release, namespace: str) -> None:
    target.kubectl("apply", "-n", namespace, "-f", str(HERE / "bookinfo.yaml"))
    deadline = time.monotonic() + 120
    for app in ("productpage", "details", "ratings", "reviews"):
        while release.ready_replicas(f"{app}-v1") < 1:
            if time.monotonic() > deadline:
                raise DemoError(f"{app}-v1 has no ready pod after 120 s")
            time.sleep(0.3)


def run_demo(
    target: Target,
    *,
    namespace: str,
    prometheus: PrometheusServer,
    console: Console,
    split_seconds: float = 10.0,
    rps: float = 60.0,
    log_dir: Path | None = None,
) -> DemoResult:
    """Run the tutorial's canary of reviews v2 end to end in ``namespace``; see the module doc."""
    started = time.monotonic()
    result = DemoResult()
    log_path = (log_dir or Path(os.environ.get("TMPDIR", "/tmp"))) / f"istio-canary-demo-{namespace}.log"
    if target.kubectl("get", "namespace", namespace, check=False) == "":
        target.kubectl("create", "namespace", namespace)
        target.kubectl("label", "namespace", namespace, "istio-injection=enabled")
    with DemoDisplay(console, steps=STEPS) as display, ExitStack() as running:
        release = _Release(target, namespace, display, result)
        with display.step(f"Deploy Bookinfo into namespace {namespace}"):
            _deploy_bookinfo(target, release, namespace)
        with display.step("Start the mesh simulator (it plays Envoy) and the operator"):
            sim = running.enter_context(_simulator(target, namespace=namespace, prometheus=prometheus))
            display.note(
                f"requests are routed by the Envoy routes istiod generates (xDS at {target.istiod})"
                if target.istiod else "no istiod to ask: requests are routed by the VirtualServices as stored"
            )
            running.enter_context(
                _operator(target, namespace=namespace, prometheus_url=prometheus.url, log_path=log_path)
            )
            # Exits run last-in first-out: the release goes while the operator still runs, so
            # that its finalizer is removed, then the operator stops, then the simulator.
            running.callback(
                target.kubectl, "delete", PLURAL, RELEASE, "-n", namespace, "--ignore-not-found",
                "--timeout=30s", check=False,
            )
            running.callback(sim.set_load, namespace=namespace, service=SERVICE, rps=0)
            sim.set_load(namespace=namespace, service=SERVICE, rps=rps)
            display.note(f"operator log: {log_path}")
        _release_flow(target, release, sim, display, result, namespace=namespace, split_seconds=split_seconds)
        display.note("stopping the operator and the simulator")
    result.seconds = time.monotonic() - started
    console.print(f"[bold green]Demo complete[/bold green] in {result.seconds:.0f} s; "
                  f"phases: {' -> '.join(result.phases)}")
    return result


def _release_flow(
    target: Target, release: _Release, sim: Simulator, display: DemoDisplay, result: DemoResult,
    *, namespace: str, split_seconds: float,
) -> None:
    with display.step(f"Apply canary-weight.yaml: {CANARY} of {SERVICE} gets 30%"):
        target.kubectl("apply", "-n", namespace, "-f", str(HERE / "canary-weight.yaml"))
        release.wait(lambda s: s.get("phase") == "Progressing" and (s.get("traffic") or {}).get("canary") == 30,
                     what="Progressing at 30%")
    with display.step(f"Live split for {split_seconds:.0f} s"):
        result.split = _watch_split(sim, release, display, seconds=split_seconds,
                                    title=f"{SERVICE}: requests served per version")
    with display.step(f"Take over: {CANARY} gets 100%"):
        release.patch_spec({"takeOver": CANARY})
        release.wait(_phase_is("TakenOver"), what="TakenOver")
        result.taken_over = _watch_split(sim, release, display, seconds=min(3.0, split_seconds),
                                         title=f"{SERVICE} after take over")
    with display.step(f"Job offline: remove {SERVICE}-{STABLE}"):
        release.patch_spec({"offline": True})
        release.wait(_phase_is("Completed"), what="Completed")
        left = target.kubectl("get", "deployments", "-n", namespace, "-l", f"app={SERVICE}",
                              "-o", "jsonpath={.items[*].metadata.name}")
        display.note(f"{SERVICE} Deployments left: {left or 'none'}")
