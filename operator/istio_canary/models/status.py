"""The CanaryRelease status: what the operator observed and decided."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field

from istio_canary.models._base import ApiModel
from istio_canary.models.analysis import AnalysisStatus

__all__ = [
    "CanaryReleaseStatus",
    "Condition",
    "ConditionType",
    "DrainStatus",
    "Phase",
    "Reason",
    "Role",
    "TrafficStatus",
    "VersionMetrics",
    "VersionStatus",
]


class Phase(str, enum.Enum):
    """Where a release is. All transitions live in ``istio_canary.phases.decide``."""

    PENDING = "Pending"
    """Validating the spec and finding the stable Deployment."""
    WAITING_FOR_CANARY = "WaitingForCanary"
    """The canary Deployment exists but has no ready pod; it gets no traffic yet."""
    PROGRESSING = "Progressing"
    """The traffic split is applied."""
    PAUSED = "Paused"
    """Workloads exist; routing is left exactly as it is (policy Paused)."""
    TAKEN_OVER = "TakenOver"
    """One version receives 100% of traffic; the other keeps running for an instant switch back."""
    COMPLETED = "Completed"
    """Job offline is done: only the surviving version remains. Nothing is removed on delete."""
    ABORTED = "Aborted"
    """Back to stable, canary removed, original routing restored. A healthy end state."""
    FAILED = "Failed"
    """The release cannot proceed; ``message`` says why. Traffic is left on stable."""

    @property
    def is_final(self) -> bool:
        return self in (Phase.COMPLETED, Phase.ABORTED)


class Reason(str, enum.Enum):
    """Why a release is where it is: the ``reason`` of the Ready condition and of Events.

    Errors add their own reasons (the error's class name, e.g. ``ForeignObject``); these are the
    state machine's.
    """

    PROGRESSING = "Progressing"
    """The split the spec asks for is written."""
    CANARY_NOT_READY = "CanaryNotReady"
    """The canary has no ready pod (or its new image is still rolling out): it gets no traffic."""
    CANARY_NEVER_READY = "CanaryNeverReady"
    """The canary had no ready pod for ``analysis.readyDeadlineSeconds``."""
    PAUSED = "Paused"
    """Policy Paused: routing is left as it is."""
    TAKEN_OVER = "TakenOver"
    """One version gets 100%."""
    DRAINING = "Draining"
    """A version lost its traffic and is kept until ``status.drain.until``."""
    GOING_OFFLINE = "GoingOffline"
    """Job offline: the other version is being removed."""
    COMPLETED = "Completed"
    """Job offline is done."""
    ABORTING = "Aborting"
    """Back to stable: the canary is being removed."""
    ABORTED = "Aborted"
    """A person asked for the abort (``spec.abort``)."""
    ANALYSIS_FAILED = "AnalysisFailed"
    """The analysis rolled the canary back."""
    DELETING = "Deleting"
    """The release is being deleted: what it changed is undone."""


class Role(str, enum.Enum):
    STABLE = "stable"
    CANARY = "canary"


class ConditionType(str, enum.Enum):
    """Condition types in ``status.conditions``."""

    READY = "Ready"
    """The routing in the cluster matches the spec."""
    SPEC_VALID = "SpecValid"
    """The spec and the cluster objects it names are usable."""
    CANARY_READY = "CanaryReady"
    """The canary Deployment has ready pods."""
    METRICS_AVAILABLE = "MetricsAvailable"
    """Prometheus answered with data for both versions."""


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class VersionMetrics(ApiModel):
    """Traffic health of one version over the last window, from Prometheus."""

    request_rate: float | None = None
    success_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    updated_at: str | None = None
    stale: bool = False


class VersionStatus(ApiModel):
    version: str
    role: Role
    deployment: str
    replicas: int = 0
    ready_replicas: int = 0
    weight: int = 0
    metrics: VersionMetrics | None = None


class TrafficStatus(ApiModel):
    """Weights as read back from the stored VirtualService (not as intended)."""

    stable: int = 0
    canary: int = 0
    mirror_percent: float | None = None
    matched_to_canary: bool = False


class DrainStatus(ApiModel):
    """A Deployment that lost its traffic and is kept until in-flight requests are done."""

    deployment: Annotated[str, Field(max_length=253)] = Field(description="The Deployment that is draining.")
    until: Annotated[str, Field(max_length=64)] = Field(
        description="Not deleted or scaled down before this time (RFC 3339)."
    )


class CanaryReleaseStatus(ApiModel):
    phase: Phase = Phase.PENDING
    observed_generation: int | None = None
    message: str = ""
    traffic: TrafficStatus | None = None
    versions: list[VersionStatus] = Field(default_factory=list, max_length=2)
    conditions: list[Condition] = Field(default_factory=list)
    analysis: AnalysisStatus | None = None
    success_rate: Annotated[float, Field(ge=0, le=100)] | None = None
    canary_revision: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="Hash of the canary's images that last received traffic; a new image on a live "
        "release gets no traffic until its own pods are ready, and its analysis starts again.",
    )
    drain: DrainStatus | None = None
    abort_reason: Reason | None = Field(
        default=None, description="Who rolled the release back: Aborted (spec.abort) or AnalysisFailed."
    )
