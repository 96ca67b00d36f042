"""The values the state machine works on: what it is given, what it decides, and its context."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from istio_canary import actions as act
from istio_canary.istio.plan import RoutePlan, ServicePort
from istio_canary.models import (
    AnalysisStatus,
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    DrainStatus,
    Phase,
    Reason,
)
from istio_canary.models.hooks import GateStatus, WebhooksStatus

__all__ = [
    "DEFAULT_DRAIN_SECONDS",
    "RETRY_INVALID_SECONDS",
    "WAIT_SECONDS",
    "Context",
    "Decision",
    "Observed",
    "ReleaseRef",
]

# How soon to look again while waiting for something the cluster does by itself.
WAIT_SECONDS = 5.0
RETRY_INVALID_SECONDS = 10.0
# Istio debounces config pushes for up to 10 s under load (PILOT_DEBOUNCE_MAX) before every
# sidecar has the new routes; a version that lost its traffic is kept that long by default.
DEFAULT_DRAIN_SECONDS = 10


@dataclass(frozen=True, kw_only=True)
class ReleaseRef:
    namespace: str
    name: str
    uid: str
    generation: int
    deleting: bool = False


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What the cluster holds in the release's namespace, as read just before deciding."""

    service: dict[str, Any] | None
    version_services: tuple[dict[str, Any], ...] = ()
    """The stable and canary versions' own Services (``<service>-<version>``) that exist (routing mode Services)."""
    deployments: tuple[dict[str, Any], ...] = ()
    virtual_service: dict[str, Any] | None = None
    destination_rule: dict[str, Any] | None = None
    edge_virtual_services: tuple[dict[str, Any], ...] = ()
    """Other VirtualServices that route to the Service (gateway-bound, delegates, listed ones), any namespace."""
    autoscalers: tuple[dict[str, Any], ...] = ()
    """HorizontalPodAutoscalers in the namespace."""
    disruption_budgets: tuple[dict[str, Any], ...] = ()
    """PodDisruptionBudgets in the namespace."""
    namespace_labels: dict[str, str] | None = None
    """The labels of the release's namespace (None: not seen)."""
    ingresses: tuple[dict[str, Any], ...] = ()
    """Ingresses in the namespace."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    phase: Phase
    reason: Reason | str
    """A state-machine ``Reason``, or an error's reason (its class name) when the release failed."""
    message: str
    actions: tuple[act.Action, ...] = ()
    events: tuple[act.Event, ...] = ()
    requeue_after: float | None = None
    invalid: bool = False
    """The spec or the objects it names are unusable; the user has to change something."""
    done: bool = False
    """Deleting: everything the release changed is undone; the finalizer may go."""
    rolled_back: bool = False
    """The analysis decided, this time, to roll the canary back (counted once by the metrics)."""
    analysis: AnalysisStatus | None = None
    canary_ready: bool | None = None
    plan: RoutePlan | None = None
    stable_deployment: str | None = None
    canary_deployment: str | None = None
    """The canary Deployment's name, when the decision resolved it (a provided one may be named anything)."""
    canary_revision: str | None = None
    """The canary images that may receive traffic (None: keep the previous status value)."""
    drain: DrainStatus | None = None
    """A Deployment that lost its traffic and waits for ``drain.until`` before it goes."""
    bypass: str | None = None
    """How traffic can reach the Service's pods without Envoy ("": no such path seen; None: not looked)."""
    abort_reason: Reason | None = None
    """Set while rolling back and once aborted: who asked for it."""
    calls: tuple[act.CallWebhook, ...] = ()
    """Webhook calls to make after the actions (``hooks.caller``); their answers go to ``status.webhooks``."""
    webhooks: WebhooksStatus | None = None
    """The webhooks' answers to keep in status (None: as they were)."""
    gate: GateStatus | None = None
    """The gate the release holds at (None: no gate holds)."""


@dataclass(frozen=True, kw_only=True)
class Context:
    """Everything one decision reads; ``ports``, ``stable`` and ``canary`` once resolved."""

    release: ReleaseRef
    spec: CanaryReleaseSpec
    observed: Observed
    previous: CanaryReleaseStatus
    now: datetime
    drain_seconds: int = DEFAULT_DRAIN_SECONDS
    ports: tuple[ServicePort, ...] = ()
    stable: dict[str, Any] | None = None
    canary: dict[str, Any] | None = None
