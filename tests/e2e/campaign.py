"""Release plans for the reliability campaigns: a release, the spec edits it goes through, its end state.

A plan walks a release stage by stage: each stage is a spec edit (or the release's deletion) and
the state that says it has converged. The kill campaign (test_kill_campaign.py) walks several
plans at once while killing the operator; every plan then checks the end state its last spec
asks for, read from the cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devcluster import Cluster

from tests.e2e.helpers import example_release, get, route_weights

__all__ = ["Plan", "Stage", "campaign_count", "end_state_problems"]

# The long run (`make reliability`) sets this; the default suite runs a tenth of each count.
LONG_RUN_ENV = "ICO_RELIABILITY_LONG"


def campaign_count(long_count: int) -> int:
    """``long_count`` in the long run, a tenth of it (at least one) in the default suite."""
    return long_count if os.environ.get(LONG_RUN_ENV) else max(1, long_count // 10)


@dataclass(frozen=True)
class Stage:
    """A spec merge patch (empty: the release as first applied; ``delete``: delete it) and where it ends."""

    phase: str
    patch: dict[str, Any] = field(default_factory=dict)
    delete: bool = False
    canary_weight: int | None = None
    """status.traffic.canary once converged (None: not checked)."""


@dataclass
class Plan:
    """One release (named after its Service) and its stages; ``at`` is the stage under way."""

    service: str
    body: dict[str, Any]
    stages: list[Stage]
    at: int = 0
    converged_now: bool = False

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def finished(self) -> bool:
        return self.at >= len(self.stages) - 1 and self.converged_now

    def advance(self, cluster: Cluster, namespace: str) -> None:
        """Apply the next stage's edit once the current one has converged."""
        self.converged_now = converged(cluster, namespace, self.name, self.stages[self.at])
        if not self.converged_now or self.at >= len(self.stages) - 1:
            return
        self.at += 1
        self.converged_now = False
        stage = self.stages[self.at]
        if stage.delete:
            cluster.kubectl("delete", "canaryrelease", self.name, "-n", namespace, "--wait=false")
        else:
            cluster.kubectl("patch", "canaryrelease", self.name, "-n", namespace, "--type=merge",
                            "-p", json.dumps({"spec": stage.patch}))

    @property
    def end(self) -> Stage:
        return self.stages[-1]


def converged(cluster: Cluster, namespace: str, name: str, stage: Stage) -> bool:
    obj = get(cluster, "canaryrelease", name, namespace)
    if stage.delete:
        return obj is None
    if obj is None:
        return False
    status = obj.get("status") or {}
    if status.get("phase") != stage.phase or status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return stage.canary_weight is None or (status.get("traffic") or {}).get("canary") == stage.canary_weight


def release(service: str, example: str = "canary-weight.yaml", **spec: Any) -> dict[str, Any]:
    """An example release moved to ``service`` (v1 -> v2, a made-up v2 image)."""
    body = example_release(example, **spec)
    body["metadata"]["name"] = service
    body["spec"]["service"] = service
    body["spec"]["canary"]["image"] = f"example.com/bookinfo/{service}:v2"
    return body


def end_state_problems(cluster: Cluster, namespace: str, plan: Plan) -> list[str]:
    """What differs from the end state the plan's last spec asks for (empty: it is reached)."""
    service, end = plan.service, plan.end
    deployments = _deployments(cluster, namespace, service)
    vs = get(cluster, "virtualservice", service, namespace)
    weights = route_weights(vs) if vs else []
    expected: dict[str, Callable[[], list[str]]] = {
        "Completed": lambda: _want(deployments == ["v2"], f"Deployments {deployments}, want v2 only")
        + _want(weights == [{"v2": 100}], f"routes {weights}, want v2 100"),
        "TakenOver": lambda: _want(deployments == ["v1", "v2"], f"Deployments {deployments}, want v1 and v2")
        + _want(weights == [{"v2": 100}], f"routes {weights}, want v2 100"),
        "Aborted": lambda: _restored(deployments, vs),
        "Progressing": lambda: _want(deployments == ["v1", "v2"], f"Deployments {deployments}, want v1 and v2"),
    }
    if end.delete:
        return _restored(deployments, vs) + _want(
            get(cluster, "canaryrelease", plan.name, namespace) is None, "the release is still there"
        )
    return expected[end.phase]()


def _restored(deployments: list[str], vs: dict[str, Any] | None) -> list[str]:
    return _want(deployments == ["v1"], f"Deployments {deployments}, want v1 only") + _want(
        vs is None, "the operator's VirtualService is still there"
    )


def _want(ok: bool, problem: str) -> list[str]:
    return [] if ok else [problem]


def _deployments(cluster: Cluster, namespace: str, service: str) -> list[str]:
    """The version label of every Deployment of the Service's app (one entry each: a duplicate shows)."""
    listed = json.loads(cluster.kubectl("get", "deployments", "-n", namespace, "-l", f"app={service}",
                                        "-o", "json").stdout)["items"]
    return sorted(d["spec"]["template"]["metadata"]["labels"].get("version", "") for d in listed
                  if (d["spec"].get("replicas") or 0) > 0)
