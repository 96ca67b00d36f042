"""What the reconcile loop shares with its callers: its settings, the cluster it writes through,
the outcome of one reconcile, and how an invalid spec is described."""

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

__all__ = ["RESYNC_SECONDS", "ClusterWriter", "Outcome", "Settings", "first_problem"]

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


def first_problem(err: pydantic.ValidationError) -> str:
    """``analysis.metrics[0].query: not PromQL: ...``: the field as a user writes it, and the problem."""
    first = err.errors()[0]
    where = ""
    for part in first.get("loc", ()):
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
