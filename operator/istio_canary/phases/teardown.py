"""Undoing a release (abort, analysis rollback, delete): pin stable, drain, remove the canary, restore routing."""

from __future__ import annotations

from typing import Any

from istio_canary import actions as act
from istio_canary import workloads
from istio_canary.istio import ownership, restore
from istio_canary.models import Phase, Reason
from istio_canary.phases import cleanup, routing
from istio_canary.phases.model import Context, Decision

__all__ = ["tear_down"]


def tear_down(ctx: Context, *, reason: Reason, cause: str = "") -> Decision:
    """The next step of undoing the release; ``reason`` is Aborted, AnalysisFailed, WebhookRollback or Deleting.

    ``cause`` says why the operator itself rolls back (analysis); it leads every message.
    Traffic goes back to stable first, the canary goes after the drain, and the routing the
    release found comes back only once the canary is gone.
    """
    canary_name = workloads.canary_deployment_name(ctx.spec)
    canary = next((d for d in ctx.observed.deployments if d["metadata"]["name"] == canary_name), None)
    ours = canary is not None and workloads.is_created_by(
        deployment=canary, release_namespace=ctx.release.namespace, release_name=ctx.release.name
    )
    if ours and not ctx.spec.canary.provided:
        return _remove_canary(ctx, reason=reason, cause=cause, canary_name=canary_name)
    return _restore(ctx, reason=reason, cause=cause, canary_name=canary_name)


def _remove_canary(ctx: Context, *, reason: Reason, cause: str, canary_name: str) -> Decision:
    stable = ctx.spec.stable.version
    plan = routing.plan(ctx, stable_weight=100, canary_weight=0) if ctx.observed.service is not None else None
    # Without the Service there is nothing to route: just remove what the release made.
    pin = routing.routing_actions(ctx, plan) if plan is not None and routing.routing_written(ctx) else ()
    lead = f"rolling back ({cause})" if cause else "rolling back"
    message = f"{lead}: 100% to {stable}, removing {canary_name}"
    # Only a canary that may have had traffic needs a drain.
    drain, left = cleanup.drain(ctx, deployment=canary_name) if pin else (None, 0.0)
    removal: tuple[act.Action, ...] = (
        act.DeleteObject(kind="Deployment", name=canary_name),
        *cleanup.remove_companions(ctx),
    )
    if left > 0:
        removal = ()
        message += f" after a drain of {ctx.drain_seconds} s"
    return Decision(
        phase=ctx.previous.phase,
        reason=Reason.DRAINING if left > 0 else Reason.ABORTING,
        message=message,
        actions=(*pin, *removal),
        requeue_after=max(left, 0.5),
        plan=plan,
        drain=drain,
        abort_reason=None if reason is Reason.DELETING else reason,
    )


def _restore(ctx: Context, *, reason: Reason, cause: str, canary_name: str) -> Decision:
    actions = (
        *cleanup.remove_companions(ctx),  # left over when a restart came between the canary's removal and theirs
        *_restore_routing(ctx, "VirtualService", ctx.observed.virtual_service),
        *(a for obj in ctx.observed.edge_virtual_services for a in _restore_routing(ctx, "VirtualService", obj)),
        *_restore_routing(ctx, "DestinationRule", ctx.observed.destination_rule),
        # Routing mode Services: once no route names them, the user's selector and no version Services.
        *routing.release_version_services(ctx),
    )
    if reason is Reason.DELETING:
        return Decision(
            phase=ctx.previous.phase,
            reason=reason,
            message="release deleted: original routing restored, "
            + ("the provided canary left as it is" if ctx.spec.canary.provided else "canary removed"),
            actions=actions,
            done=True,
        )
    lead = f"aborted ({cause})" if cause else "aborted"
    gone = "left as it is (provided)" if ctx.spec.canary.provided else "removed"
    message = f"{lead}: 100% to {ctx.spec.stable.version}, {canary_name} {gone}, original routing restored"
    already = ctx.previous.phase is Phase.ABORTED
    if already:
        message = ctx.previous.message  # the first words said why; later looks keep them
    events = () if already else (act.Event(type="Normal", reason=reason.value, message=message),)
    return Decision(
        phase=Phase.ABORTED, reason=reason, message=message, actions=actions, events=events, abort_reason=reason
    )


def _restore_routing(ctx: Context, kind: act.RoutingKind, obj: dict[str, Any] | None) -> tuple[act.Action, ...]:
    """Put back what the release found: the recorded original, or nothing when it created the object."""
    if obj is None:
        return ()
    owner = (obj.get("metadata", {}).get("labels") or {}).get(ownership.RELEASE_LABEL)
    if owner != ctx.release.name:
        return ()  # never touched by this release, or already restored: not ours to restore
    original = restore.restored_object(obj)
    if original is None:
        return (act.DeleteObject(kind=kind, name=obj["metadata"]["name"]),)
    return (act.ReplaceRouting(kind=kind, body=original, namespace=obj["metadata"].get("namespace")),)
