"""Readiness predicates over a Deployment as the API server reports it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["has_ready_pods", "ready_replicas", "rolled_out"]


def ready_replicas(deployment: Mapping[str, Any]) -> int:
    """``status.readyReplicas``; the API server leaves it out when it is zero."""
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


def has_ready_pods(deployment: Mapping[str, Any]) -> bool:
    """Whether traffic may go to this Deployment: a ready pod, counted for its latest spec.

    Until ``status.observedGeneration`` catches up with ``metadata.generation`` the controller
    has not seen the latest change yet, so its ready count describes an older Deployment.
    """
    generation = (deployment.get("metadata") or {}).get("generation")
    observed = (deployment.get("status") or {}).get("observedGeneration")
    if generation is None or observed is None or int(observed) < int(generation):
        return False
    return ready_replicas(deployment) >= 1


def rolled_out(deployment: Mapping[str, Any]) -> bool:
    """Whether every pod runs the latest template and is ready (no pod of an older one is left).

    A new image rolls out pod by pod; until this holds, some ready pods still run the old one.
    """
    meta, status = deployment.get("metadata") or {}, deployment.get("status") or {}
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is None or observed is None or int(observed) < int(generation):
        return False
    desired = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    updated, total = int(status.get("updatedReplicas") or 0), int(status.get("replicas") or 0)
    return updated >= desired and total == updated and ready_replicas(deployment) >= max(desired, 1)
