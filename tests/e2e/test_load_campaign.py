"""Load campaign: many releases whose weights change all the time, while the operator is killed every so often.

N releases share a namespace (200 in the long run, 20 in the default suite), each a Service with
a stable Deployment and a release by weight to v2. For the campaign's length (10 minutes, or 1)
a driver keeps changing random releases' weights, one change per release every 5 s on average,
and the operator is SIGKILLed every minute (every 30 s in the short run), a fresh process started
at once as a kubelet would. Then the driver stops and one last process runs unharmed.

Under the invariant monitor, which sees every state. Asserted: no violation; every release ends
on its last weight, in its routes and its status; the operator's writes stay proportional to the
changes (counted from the monitor's revisions: VirtualServices, DestinationRules, Deployment spec
writes, release status writes); each process's memory at the end of its life is no larger than
the first one's, give or take (no leak carried over, none grown within a life). The tally is printed.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
from devcluster import Cluster
from istio_canary.models.marks import GROUP, PLURAL, VERSION
from kubernetes import client

from tests.e2e.campaign import LONG_RUN_ENV, release
from tests.e2e.helpers import apply, route_weights, wait_for
from tests.e2e.processes import OperatorProcess
from tests.invariants.monitor import InvariantMonitor
from tests.invariants.revisions import (
    DEPLOYMENT,
    DESTINATION_RULE,
    RELEASE,
    VIRTUAL_SERVICE,
    Revision,
)

pytestmark = pytest.mark.reliability

LONG = bool(os.environ.get(LONG_RUN_ENV))
RELEASES = 200 if LONG else 20
SECONDS = 600.0 if LONG else 60.0
KILL_EVERY = 60.0 if LONG else 30.0
CHANGE_EVERY = 5.0
"""Seconds between two changes of one release's weight, on average."""
STATUS_GRACE = 120.0  # as the kill campaign's: a killed process can leave status behind until the next one acts


@dataclass
class LoadReport:
    changes: int = 0
    kills: int = 0
    rss_mb: list[tuple[float, float]] = field(default_factory=list)
    """Each process's (age in seconds, RSS in MB) at its last sample before it was killed."""
    writes: dict[str, int] = field(default_factory=dict)


def _workload(name: str) -> list[dict[str, Any]]:
    labels = {"app": name, "version": "v1"}
    return [
        {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"clusterIP": "None", "selector": {"app": name},
                     "ports": [{"name": "http", "port": 9080, "targetPort": 9080}]},
        },
        {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"{name}-v1", "labels": labels},
            "spec": {
                "replicas": 1, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                    "name": "app", "image": "example.com/load/app:v1", "ports": [{"containerPort": 9080}],
                }]}},
            },
        },
    ]


def _names() -> list[str]:
    return [f"load-{i:03d}" for i in range(RELEASES)]


def _where(cluster: Cluster, ns: str) -> dict[str, tuple[list[dict[str, int]], int | None, int]]:
    """Each release: its VirtualService's weights, its status.traffic.canary and its spec weight."""
    custom = client.CustomObjectsApi(cluster.api_client())
    routes = {
        vs["metadata"]["name"]: route_weights(vs)
        for vs in custom.list_namespaced_custom_object("networking.istio.io", "v1", ns, "virtualservices")["items"]
    }
    found = {}
    for body in custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]:
        name = body["metadata"]["name"]
        said = ((body.get("status") or {}).get("traffic") or {}).get("canary")
        found[name] = (routes.get(name, []), said, int(body["spec"]["traffic"]["weight"]))
    return found


def _settled(cluster: Cluster, ns: str) -> list[str]:
    """The releases not (yet) on their spec weight, in routes and status."""
    return [
        name for name, (weights, said, wanted) in _where(cluster, ns).items()
        if weights != [{"v1": 100 - wanted, "v2": wanted}] or said != wanted
    ]


def _drive(cluster: Cluster, ns: str, report: LoadReport, *, until: float, seed: int) -> None:
    """Change random releases' weights until ``until``: RELEASES / CHANGE_EVERY changes a second."""
    custom = client.CustomObjectsApi(cluster.api_client())
    rng, names, gap = random.Random(seed), _names(), CHANGE_EVERY / RELEASES
    weights = dict.fromkeys(names, 10)
    due = time.monotonic()
    while (now := time.monotonic()) < until:
        if now < due:
            time.sleep(due - now)
            continue
        due += gap
        name = rng.choice(names)
        weight = rng.choice([w for w in range(5, 100, 5) if w != weights[name]])
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": {"traffic": {"weight": weight}}},
            _content_type="application/merge-patch+json",
        )
        weights[name] = weight
        report.changes += 1


def _sample(operator: OperatorProcess, into: list[tuple[float, float]], stop: threading.Event) -> None:
    """Record (age, RSS MB) of the process every second until ``stop``."""
    assert operator.proc is not None
    started = time.monotonic()
    try:
        proc = psutil.Process(operator.proc.pid)
        while not stop.wait(1.0):
            into.append((time.monotonic() - started, proc.memory_info().rss / 2**20))
    except psutil.Error:
        return


def _operator_writes(revisions: list[Revision], names: set[str]) -> dict[str, int]:
    """What the operator wrote, read from the revisions: routing objects, Deployment specs, and its
    writes of a release (status, finalizer, kopf's annotations: every revision that kept the generation)."""
    counts = {"VirtualService": 0, "DestinationRule": 0, "Deployment": 0, "CanaryRelease": 0}
    made_by_test = {(RELEASE, name) for name in names} | {(DEPLOYMENT, f"{name}-v1") for name in names}
    last_generation: dict[str, int] = {}
    seen: set[tuple[str, str, int]] = set()
    for rev in revisions:
        if (rev.kind, rev.name, rev.resource_version) in seen:
            continue  # listed again (after a broken watch, or at the end): not a write
        seen.add((rev.kind, rev.name, rev.resource_version))
        generation = int(rev.body.get("metadata", {}).get("generation") or 0)
        key, before = f"{rev.kind}/{rev.name}", last_generation.get(f"{rev.kind}/{rev.name}")
        last_generation[key] = generation
        if rev.deleted or (before is None and (rev.kind, rev.name) in made_by_test):
            continue  # created by the test
        if rev.kind in (VIRTUAL_SERVICE, DESTINATION_RULE):
            counts[rev.kind] += 1
        elif rev.kind == DEPLOYMENT and generation != before:
            counts["Deployment"] += 1
        elif rev.kind == RELEASE and generation == before:
            counts["CanaryRelease"] += 1  # status, or kopf's bookkeeping in the metadata
    return counts


def test_releases_changing_weights_for_minutes_with_the_operator_killed_again_and_again(
    cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    ns, report, names = namespace, LoadReport(), _names()
    apply(cluster, ns, {"apiVersion": "v1", "kind": "List", "items": [o for n in names for o in _workload(n)]})
    wait_for(lambda: _stable_ready(cluster, ns) == RELEASES, timeout=300, what=f"{RELEASES} stable Deployments ready")
    monitor = InvariantMonitor(cluster.api_client, ns, status_grace=STATUS_GRACE).start()
    stop_sampling = threading.Event()
    try:
        items = []
        for name in names:
            body = release(name)
            body["spec"]["traffic"]["weight"] = 10
            items.append(body)
        apply(cluster, ns, {"apiVersion": "v1", "kind": "List", "items": items})
        operator = start_operator(env={"PYTHONUNBUFFERED": "1"})
        wait_for(lambda: not _settled(cluster, ns), timeout=300, what=f"{RELEASES} releases at 10%")
        began = time.monotonic()
        driver = threading.Thread(target=_drive, args=(cluster, ns, report),
                                  kwargs={"until": began + SECONDS, "seed": 23_001}, daemon=True)
        driver.start()
        while time.monotonic() < began + SECONDS:
            samples: list[tuple[float, float]] = []
            stop_sampling.clear()
            sampler = threading.Thread(target=_sample, args=(operator, samples, stop_sampling), daemon=True)
            sampler.start()
            time.sleep(min(KILL_EVERY, max(0.0, began + SECONDS - time.monotonic())))
            stop_sampling.set()
            sampler.join()
            if samples:
                report.rss_mb.append(samples[-1])
            if time.monotonic() < began + SECONDS:
                operator.kill()
                report.kills += 1
                operator = start_operator(env={"PYTHONUNBUFFERED": "1"})
        driver.join()
        wait_for(lambda: not _settled(cluster, ns), timeout=300,
                 what="every release on its last weight: " + ", ".join(_settled(cluster, ns)[:10]))
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        stop_sampling.set()
        monitor.stop()
    report.writes = _operator_writes(monitor.revisions, set(names))
    monitor.assert_clean()
    _print(report)

    # Writes follow the changes: one VirtualService write per change at most (changes close
    # together may be carried out as one); per change also a status write and kopf's record that
    # it handled the spec; per release a few more to set it up (finalizer, first status, canary).
    assert report.writes["VirtualService"] <= report.changes + 2 * RELEASES, report.writes
    assert report.writes["DestinationRule"] <= 2 * RELEASES, report.writes
    assert report.writes["Deployment"] <= 2 * RELEASES, report.writes
    assert report.writes["CanaryRelease"] <= 3 * report.changes + 8 * RELEASES, report.writes
    # Memory: every process ends its life near where the first one ended its own.
    first = report.rss_mb[0][1]
    assert all(rss <= first * 1.25 + 10 for _, rss in report.rss_mb), report.rss_mb


def _stable_ready(cluster: Cluster, ns: str) -> int:
    apps = client.AppsV1Api(cluster.api_client())
    return sum(1 for d in apps.list_namespaced_deployment(ns).items if (d.status.ready_replicas or 0) >= 1)


def _print(report: LoadReport) -> None:
    writes = sum(report.writes.values())
    rss = [round(r, 1) for _, r in report.rss_mb]
    print(
        f"load campaign: {RELEASES} releases, {SECONDS:.0f} s, {report.changes} weight changes, "
        f"{report.kills} kills; operator writes {report.writes} = {writes} "
        f"({writes / max(1, report.changes):.2f} per change); RSS at the end of each process's life (MB): {rss} "
        f"(median {statistics.median(rss) if rss else 0:.1f})"
    )
