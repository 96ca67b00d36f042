"""What the reconcile loop shares with its callers: its settings, the cluster it writes through,
the outcome of one reconcile, and how the result of each write is kept for status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydantic

from istio_canary import actions as act
from istio_canary import phases
from istio_canary.analysis.egress import Egress
from istio_canary.k8s.cluster import Executed
from istio_canary.models import CanaryReleaseStatus

__all__ = ["RESYNC_SECONDS", "Applied", "ClusterWriter", "Outcome", "Settings", "first_problem", "record"]

# How long a settled release waits before it is checked again for drift.
RESYNC_SECONDS = 30.0


@dataclass(frozen=True, kw_only=True)
class Settings:
    metrics_interval_seconds: float = 10.0
    metrics_window_seconds: int = 60
    resync_seconds: float = RESYNC_SECONDS
    drain_seconds: int = phases.DEFAULT_DRAIN_SECONDS
    egress: Egress = field(default_factory=Egress)
    """The outbound policy for URLs that releases name (outbound.py), and its resolver."""


class ClusterWriter(Protocol):
    """The cluster adapter as the reconciler uses it (``k8s.cluster.Cluster``, or a wrapper)."""

    @property
    def api(self) -> Any: ...

    def execute(self, action: act.Action, *, observed: phases.Observed, namespace: str) -> Executed: ...

    def patch_status(self, *, namespace: str, name: str, patch: dict[str, Any]) -> None: ...

    def post_event(self, *, release: Mapping[str, Any], event: act.Event) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Outcome:
    decision: phases.Decision
    status: CanaryReleaseStatus
    status_patch: dict[str, Any] | None
    writes: int
    spec_invalid: bool = False
    """The spec itself did not parse: the release never changed anything."""


@dataclass
class Applied:
    """What the writes left: the Deployments and VirtualService to report, and how many writes."""

    deployments: dict[str, dict[str, Any]]
    virtual_service: dict[str, Any] | None
    edges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """The other VirtualServices the release splits, by (namespace, name)."""
    writes: int = 0


def record(applied: Applied, action: act.Action, done: Executed) -> None:
    """Keep what a write stored, so that status reports the objects as they are now."""
    if done.wrote:
        applied.writes += 1
    match action:
        case act.ApplyDeployment() | act.PatchObject(kind="Deployment") if done.stored is not None:
            applied.deployments[done.stored["metadata"]["name"]] = done.stored
        case act.DeleteObject(kind="Deployment", name=name):
            applied.deployments.pop(name, None)
        case act.ApplyRouting(kind="VirtualService", namespace=where) | act.ReplaceRouting(
            kind="VirtualService", namespace=where
        ) if where is not None and done.stored is not None:
            applied.edges[(where, done.stored["metadata"]["name"])] = done.stored
        case act.ApplyRouting(kind="VirtualService") | act.ReplaceRouting(kind="VirtualService"):
            applied.virtual_service = done.stored
        case act.DeleteObject(kind="VirtualService"):
            applied.virtual_service = None
        case _:
            pass


def first_problem(err: pydantic.ValidationError) -> str:
    """``analysis.metrics[0].query: not PromQL: ...``: the field as a user writes it, and the problem."""
    first = err.errors()[0]
    where = ""
    for part in first.get("loc", ()):
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
