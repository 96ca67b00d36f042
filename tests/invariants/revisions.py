"""What the invariant monitor records and reports: object revisions, violations, the namespace as replayed.

Kubernetes serialises every write of a namespace through one etcd, so the resourceVersions of all
kinds form one order: sorting the revisions of five separate watches by resourceVersion gives the
sequence of states the cluster actually went through (the API's documentation calls the value
opaque; a test tool on a known API server may read it as etcd's revision).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["KINDS", "Revision", "Rule", "State", "Violation", "in_order"]

# The kinds the monitor watches, as they are named in revisions and violations.
VIRTUAL_SERVICE = "VirtualService"
DESTINATION_RULE = "DestinationRule"
DEPLOYMENT = "Deployment"
SERVICE = "Service"
RELEASE = "CanaryRelease"
KINDS = (VIRTUAL_SERVICE, DESTINATION_RULE, DEPLOYMENT, SERVICE, RELEASE)


class Rule(str, Enum):
    """One invariant; a violation names the rule it breaks."""

    WEIGHTS_NOT_100 = "WeightsNot100"
    """An http or tcp route's destinations carry weights that do not add up to 100."""
    NO_WEIGHT_FOR_HOST = "NoWeightForHost"
    """A route forwards to the released Service with a total weight of 0: its requests fail."""
    MISSING_SUBSET = "MissingSubset"
    """A weighted destination names a subset that no DestinationRule of its host defines."""
    MISSING_SERVICE = "MissingService"
    """A weighted destination names a version's own Service (routing mode Services) that does not exist."""
    NO_READY_POD = "NoReadyPod"
    """A weighted destination's version (its subset, or its Service's selector) has no ready pod."""
    KEPT_ROUTE_GONE = "KeptRouteGone"
    """A route of a user's VirtualService that does not concern the release is gone or changed."""
    KEPT_FIELD_GONE = "KeptFieldGone"
    """A field of a user's routing object that the release must keep is gone or changed."""
    STATUS_DISAGREES = "StatusDisagrees"
    """A release's status.traffic matches no stored route for longer than the grace period."""


@dataclass(frozen=True)
class Revision:
    """One object as a watch delivered it (``deleted``: its last state, as the DELETED event carries)."""

    kind: str
    name: str
    resource_version: int
    body: Mapping[str, Any]
    deleted: bool = False
    seen_at: float = 0.0
    """When the watch delivered it (monotonic seconds): the clock of the grace period."""

    @property
    def subject(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Violation:
    """A state in which an invariant did not hold, first seen at ``resource_version``."""

    rule: Rule
    subject: str
    message: str
    resource_version: int

    def __str__(self) -> str:
        return f"[{self.rule.value}] {self.subject} at resourceVersion {self.resource_version}: {self.message}"


@dataclass
class State:
    """The namespace as replayed so far: the latest body of every live object, by kind and name."""

    namespace: str
    objects: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    baselines: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """The spec of each user's routing object (not the operator's) when the monitor first saw it."""
    released: dict[str, set[str]] = field(default_factory=dict)
    """Every Service a release ever named, with every version those releases named."""

    def of(self, kind: str) -> dict[str, Mapping[str, Any]]:
        return self.objects[kind]

    def apply(self, revision: Revision) -> None:
        live = self.objects[revision.kind]
        if revision.deleted:
            live.pop(revision.name, None)
            return
        live[revision.name] = revision.body
        if revision.kind in (VIRTUAL_SERVICE, DESTINATION_RULE):
            key = revision.subject
            if key not in self.baselines and not _operators(revision.body):
                self.baselines[key] = dict(revision.body.get("spec") or {})
        if revision.kind == RELEASE:
            spec = revision.body.get("spec") or {}
            versions = self.released.setdefault(str(spec.get("service", "")), set())
            for role in ("stable", "canary"):
                version = (spec.get(role) or {}).get("version") if isinstance(spec.get(role), dict) else None
                if isinstance(version, str):
                    versions.add(version)


def _operators(body: Mapping[str, Any]) -> bool:
    labels = (body.get("metadata") or {}).get("labels") or {}
    return bool(labels.get("app.kubernetes.io/managed-by") == "istio-canary-operator")


def in_order(revisions: Iterable[Revision]) -> list[Revision]:
    """The revisions in etcd's order, each once (a watch that reconnects delivers some again)."""
    unique = {(r.kind, r.name, r.resource_version, r.deleted): r for r in revisions}
    return sorted(unique.values(), key=lambda r: (r.resource_version, r.deleted))
