"""What the state machine asks the Kubernetes adapter to do: small frozen values, in order.

The adapter (``istio_canary.k8s``) executes each one idempotently: applying an object that
already matches writes nothing, deleting a missing object is success.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Action",
    "ApplyCompanion",
    "ApplyDeployment",
    "ApplyRouting",
    "ApplyService",
    "CallWebhook",
    "DeleteObject",
    "Event",
    "PatchObject",
    "ReplaceRouting",
    "ScaleDeployment",
]

RoutingKind = Literal["VirtualService", "DestinationRule"]
CompanionKind = Literal["HorizontalPodAutoscaler", "PodDisruptionBudget"]
WorkloadKind = Literal["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
DeletableKind = Literal[
    "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "VirtualService", "DestinationRule", "Service"
]
PatchableKind = Literal[
    "VirtualService", "DestinationRule", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"
]


@dataclass(frozen=True, kw_only=True)
class ApplyDeployment:
    """Create the canary Deployment, or patch the fields the operator owns when they differ."""

    body: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ApplyCompanion:
    """Create the canary's HPA or PDB copy, or replace its spec when it differs from ``body``."""

    kind: CompanionKind
    body: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ApplyRouting:
    """Create a VirtualService or DestinationRule, or replace its spec when it differs."""

    kind: RoutingKind
    body: dict[str, Any]
    namespace: str | None = None
    """Where the object lives; None: the release's namespace (a gateway's VirtualService may live elsewhere)."""


@dataclass(frozen=True, kw_only=True)
class ApplyService:
    """Create a version's own Service (routing mode Services), or patch its selector and ports when they differ."""

    body: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ReplaceRouting:
    """Replace a VirtualService or DestinationRule with exactly ``body``.

    ``body`` carries the resourceVersion it was computed from, so the replace is conflict-checked:
    undoing an adoption puts back the recorded original over the object as it was observed.
    """

    kind: RoutingKind
    body: dict[str, Any]
    namespace: str | None = None
    """Where the object lives; None: the release's namespace."""


@dataclass(frozen=True, kw_only=True)
class DeleteObject:
    """Delete a Deployment, the canary's HPA or PDB copy, or routing the release created (404 is success)."""

    kind: DeletableKind
    name: str


@dataclass(frozen=True, kw_only=True)
class ScaleDeployment:
    """Scale a Deployment that someone else manages (job offline with offlineAction ScaleToZero)."""

    name: str
    replicas: int


@dataclass(frozen=True, kw_only=True)
class PatchObject:
    """Apply this JSON merge patch to that object (a null value removes a key; 404 is success).

    The hand-over at the end of a release uses it to take the operator's marks off the objects
    that outlive the release.
    """

    kind: PatchableKind
    name: str
    patch: dict[str, Any]
    namespace: str | None = None
    """Where the object lives; None: the release's namespace."""


@dataclass(frozen=True, kw_only=True)
class CallWebhook:
    """POST ``payload`` (JSON) to a release's webhook, under the outbound policy; the result goes to status.

    Carried out by ``hooks.caller`` after the decision's Kubernetes actions (``Decision.calls``);
    it is no ``Action``: the Kubernetes adapter never sees it.
    """

    name: str
    type: str
    url: str = field(repr=False)
    timeout_seconds: float
    gate: str
    """What the call is for: ``confirm-rollout``, ``weight-50``, ``promotion``, ``rollback``, ``event``..."""
    entry: str
    """Where its answer is recorded in ``status.webhooks`` (``name/gate@revision``)."""
    payload: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Event:
    """A Kubernetes Event on the CanaryRelease."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    extra: dict[str, str] = field(default_factory=dict)


Action = (
    ApplyDeployment
    | ApplyRouting
    | ApplyCompanion
    | ApplyService
    | ReplaceRouting
    | DeleteObject
    | ScaleDeployment
    | PatchObject
)
