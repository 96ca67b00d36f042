"""What outlives a version and what goes with it: drains, the canary's HPA/PDB copies, the hand-over."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from istio_canary import actions as act
from istio_canary import workloads
from istio_canary.istio import ownership
from istio_canary.models import DrainStatus
from istio_canary.phases import routing as routing_mode
from istio_canary.phases.model import Context

__all__ = ["companions", "drain", "hand_over", "remove_companions"]


def drain(ctx: Context, *, deployment: str) -> tuple[DrainStatus, float]:
    """The drain of ``deployment``, which has just lost its traffic, and the seconds it has left.

    The deadline is set by the first decision that moves the traffic away and kept in status,
    so a restarted operator waits out the same drain (or, if that status write was lost, a
    fresh one: never a shorter one).
    """
    previous = ctx.previous.drain
    if previous is not None and previous.deployment == deployment:
        until = datetime.fromisoformat(previous.until)
    else:
        until = ctx.now + timedelta(seconds=ctx.drain_seconds)
    return DrainStatus(deployment=deployment, until=until.isoformat()), max((until - ctx.now).total_seconds(), 0.0)


def hand_over(ctx: Context) -> tuple[act.Action, ...]:
    """Take this release's marks off the routing, the surviving canary and its copies.

    The next release then finds plain objects: it adopts the routing (so its abort comes back
    here, not to before this release) and clones the survivor as its stable.
    """
    # Routing mode Services was undone on the way to Completed; again here after a restart in between.
    actions: list[act.Action] = list(routing_mode.release_version_services(ctx))
    routing: tuple[tuple[act.RoutingKind, dict[str, Any] | None], ...] = (
        ("DestinationRule", ctx.observed.destination_rule),
        ("VirtualService", ctx.observed.virtual_service),
        *(("VirtualService", obj) for obj in ctx.observed.edge_virtual_services),
    )
    for routing_kind, routing_obj in routing:
        patch = ownership.hand_over_patch(routing_obj, release_name=ctx.release.name) if routing_obj else None
        if routing_obj is not None and patch is not None:
            meta = routing_obj["metadata"]
            actions.append(
                act.PatchObject(kind=routing_kind, name=meta["name"], patch=patch, namespace=meta.get("namespace"))
            )
    canary_name = workloads.canary_deployment_name(ctx.spec)
    survivors = tuple(d for d in ctx.observed.deployments if d["metadata"]["name"] == canary_name)
    for kind, obj in _workload_objects(ctx, deployments=survivors):
        if obj["metadata"].get("deletionTimestamp"):
            continue
        patch = workloads.hand_over_patch(
            deployment=obj, release_namespace=ctx.release.namespace, release_name=ctx.release.name
        )
        if patch is not None:
            actions.append(act.PatchObject(kind=kind, name=obj["metadata"]["name"], patch=patch))
    return tuple(actions)


def companions(ctx: Context) -> list[dict[str, Any]]:
    """The canary's HPA and PDB copies to apply; a same-named object someone else made is left alone."""
    assert ctx.stable is not None
    existing = {(kind, o["metadata"]["name"]): o for kind, o in _workload_objects(ctx)}
    wanted = workloads.build_canary_companions(
        stable=ctx.stable,
        canary_name=workloads.canary_deployment_name(ctx.spec),
        canary_version=ctx.spec.canary.version,
        version_label=ctx.spec.version_label,
        autoscalers=ctx.observed.autoscalers,
        disruption_budgets=ctx.observed.disruption_budgets,
        release=f"{ctx.release.namespace}/{ctx.release.name}",
        release_uid=ctx.release.uid,
    )
    return [body for body in wanted if _ours_or_absent(ctx, existing.get((body["kind"], body["metadata"]["name"])))]


def remove_companions(ctx: Context) -> tuple[act.Action, ...]:
    """Delete the canary's HPA and PDB copies (those this release made and that still exist)."""
    return tuple(
        act.DeleteObject(kind=kind, name=obj["metadata"]["name"])
        for kind, obj in _workload_objects(ctx)
        if _created_here(ctx, obj)
    )


def _workload_objects(
    ctx: Context, *, deployments: tuple[dict[str, Any], ...] = ()
) -> list[tuple[act.WorkloadKind, dict[str, Any]]]:
    listed: list[tuple[act.WorkloadKind, dict[str, Any]]] = [("Deployment", d) for d in deployments]
    listed += [("HorizontalPodAutoscaler", o) for o in ctx.observed.autoscalers]
    listed += [("PodDisruptionBudget", o) for o in ctx.observed.disruption_budgets]
    return listed


def _created_here(ctx: Context, obj: dict[str, Any]) -> bool:
    return workloads.is_created_by(
        deployment=obj, release_namespace=ctx.release.namespace, release_name=ctx.release.name
    )


def _ours_or_absent(ctx: Context, obj: dict[str, Any] | None) -> bool:
    return obj is None or _created_here(ctx, obj)
