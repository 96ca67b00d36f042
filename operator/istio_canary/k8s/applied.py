"""What a reconcile's writes left: the objects to report in status, the count of writes, the webhook calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from istio_canary import actions as act
from istio_canary.k8s.cluster import Executed
from istio_canary.models.hooks import WebhookCall

__all__ = ["Applied", "record_write"]


@dataclass
class Applied:
    """What the writes left: the Deployments and VirtualService to report, and how many writes."""

    deployments: dict[str, dict[str, Any]]
    virtual_service: dict[str, Any] | None
    edges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """The other VirtualServices the release splits, by (namespace, name)."""
    writes: int = 0
    calls: list[tuple[str, WebhookCall]] = field(default_factory=list)
    """The webhook calls made, each with the entry of status.webhooks its answer goes to."""


def record_write(applied: Applied, action: act.Action, done: Executed) -> None:
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
