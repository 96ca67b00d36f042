"""The CanaryRelease status: what the operator observed and decided."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import Field

from istio_canary.models._base import ApiModel
from istio_canary.models.analysis import AnalysisStatus
from istio_canary.models.hooks import GateStatus, WebhooksStatus

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
    WAITING_FOR_WEBHOOK = "WaitingForWebhook"
    """A gate holds the release until a webhook answers 2xx (`status.gate`)."""
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    """A gate holds the release until `spec.approve` approves it (`status.gate`)."""
    WEBHOOK_ROLLBACK = "WebhookRollback"
    """A webhook rolled the canary back: a PreRollout hook failed, or a Rollback hook answered 2xx."""


class Role(str, enum.Enum):
    STABLE = "stable"
    CANARY = "canary"


class ConditionType(str, enum.Enum):
    """Condition types in ``status.conditions``."""

    READY = "Ready"
    """The release has ended as asked: True at Completed and at an abort asked in the spec (reason Completed or Aborted); False, with the release's reason, while it moves, waits, is paused, or failed (an analysis rollback included). What `kubectl wait --for=condition=Ready` waits for."""
    RECONCILING = "Reconciling"
    """kstatus (abnormal-true): True while the operator works towards the spec by itself (finding workloads, waiting for the canary, draining, analysis steps, retrying an error); False once it holds what the spec asks and waits for the next change."""
    STALLED = "Stalled"
    """kstatus (abnormal-true): True when the release cannot go on as the spec asks: phase Failed, or the analysis rolled the canary back."""
    SPEC_VALID = "SpecValid"
    """The spec and the cluster objects it names are usable."""
    CANARY_READY = "CanaryReady"
    """The canary Deployment has ready pods."""
    METRICS_AVAILABLE = "MetricsAvailable"
    """Prometheus answered with data for both versions."""
    GATED = "Gated"
    """True while a gate (a webhook or an approval) holds the release; `status.gate` says which (only on releases with webhooks or approvals)."""
    MESH_ONLY = "MeshOnly"
    """No path to the Service that bypasses Envoy is visible (False: a NodePort or LoadBalancer Service, external IPs, an Ingress to the Service, or a namespace without sidecar injection reach both versions' pods by the selector)."""


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    type: str
    """Condition type."""
    status: str  # "True" | "False" | "Unknown"
    """`True`, `False` or `Unknown`."""
    reason: str
    """One CamelCase word saying why."""
    message: str = ""
    """Details for people."""
    last_transition_time: str
    """When `status` last changed."""
    observed_generation: int | None = None
    """The spec generation the condition describes."""


class VersionMetrics(ApiModel):
    """Traffic health of one version over the last window, from Prometheus."""

    request_rate: float | None = None
    """Requests per second."""
    success_rate: float | None = None
    """Percent of requests answered without a 5xx."""
    latency_p50_ms: float | None = None
    """Median request duration, in ms."""
    latency_p99_ms: float | None = None
    """99th percentile request duration, in ms."""
    updated_at: str | None = None
    """When these metrics were read."""
    stale: bool = False
    """True when Prometheus could not be read at the last try."""


class VersionStatus(ApiModel):
    version: str
    """Version label value."""
    role: Role
    """Whether this is the stable or the canary version."""
    deployment: str
    """Name of the version's Deployment."""
    managed: bool = False
    """True when the release created this Deployment (and removes it on abort); False when it only routes to it: the stable one, or a canary you provide."""
    replicas: int = 0
    """Desired replicas of that Deployment."""
    ready_replicas: int = 0
    """Ready replicas of that Deployment."""
    weight: int = 0
    """Percent of requests routed to this version."""
    metrics: VersionMetrics | None = None


class TrafficStatus(ApiModel):
    """Weights as read back from the stored VirtualService (not as intended)."""

    stable: int = 0
    """Percent of requests routed to the stable version."""
    canary: int = 0
    """Percent of requests routed to the canary version."""
    mirror_percent: float | None = None
    """Percent of requests mirrored to the canary."""
    matched_to_canary: bool = False
    """Whether request-content rules send requests to the canary."""


class RoutedObject(ApiModel):
    """A routing object the release controls, with the weights read back from it."""

    kind: Annotated[str, Field(max_length=32)]
    """The object's kind (VirtualService)."""
    namespace: Annotated[str, Field(max_length=63)]
    """The object's namespace."""
    name: Annotated[str, Field(max_length=253)]
    """The object's name."""
    stable: int = 0
    """Percent of its requests for the Service routed to the stable version."""
    canary: int = 0
    """Percent of its requests for the Service routed to the canary version."""


class DrainStatus(ApiModel):
    """A Deployment that lost its traffic and is kept until in-flight requests are done."""

    deployment: Annotated[str, Field(max_length=253)] = Field(description="The Deployment that is draining.")
    until: Annotated[str, Field(max_length=64)] = Field(
        description="Not deleted or scaled down before this time (RFC 3339)."
    )


class CanaryReleaseStatus(ApiModel):
    phase: Phase = Phase.PENDING
    observed_generation: int | None = None
    """The spec generation this status describes."""
    message: str = ""
    """What the operator is doing or waiting for, or why it failed."""
    traffic: TrafficStatus | None = None
    versions: list[VersionStatus] = Field(default_factory=list, max_length=2)
    """One entry per version."""
    routing: list[RoutedObject] = Field(default_factory=list, max_length=64)
    """Every VirtualService the release splits (its own first, then gateway-bound, delegate and listed ones), as stored."""
    conditions: list[Condition] = Field(default_factory=list)
    """Kubernetes-style conditions, keyed by type: Ready, Reconciling and Stalled (kstatus), SpecValid, CanaryReady, MetricsAvailable, MeshOnly, Gated."""
    analysis: AnalysisStatus | None = None
    """Where automatic progression stands."""
    success_rate: Annotated[float, Field(ge=0, le=100)] | None = None
    """Success rate of the canary's requests, in percent."""
    canary_revision: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="Hash of the canary's images that last received traffic; a new image on a live "
        "release gets no traffic until its own pods are ready, and its analysis starts again.",
    )
    drain: DrainStatus | None = None
    abort_reason: Reason | None = Field(
        default=None,
        description="Who rolled the release back: Aborted (spec.abort), AnalysisFailed or WebhookRollback.",
    )
    webhooks: WebhooksStatus | None = None
    """The webhooks' last calls and the gates they passed."""
    gate: GateStatus | None = None
    """The gate the release holds at, while it holds."""
