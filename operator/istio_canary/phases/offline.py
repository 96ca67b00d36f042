"""Job offline: the survivor keeps 100%, the other version's routes go, then (after a drain) its workload."""

from __future__ import annotations

from istio_canary import actions as act
from istio_canary import workloads
from istio_canary.models import OfflineAction, Phase, Reason
from istio_canary.phases import cleanup, routing
from istio_canary.phases.model import Context, Decision
from istio_canary.phases.resolve import canary_name

__all__ = ["go_offline"]


def go_offline(ctx: Context, *, survivor: str) -> Decision:
    """Route everything to ``survivor``, drop the other subset, and remove the other version."""
    survivor_is_canary = survivor == ctx.spec.canary.version
    leaving, removal, gone = _leaving(ctx, survivor_is_canary=survivor_is_canary)
    plan = routing.plan(
        ctx,
        stable_weight=0 if survivor_is_canary else 100,
        canary_weight=100 if survivor_is_canary else 0,
        subsets=(survivor,),
        # Once the other version is gone, routing mode Services hands back plain subset routing.
        version_services=False if gone else None,
    )
    # Stop pointing at the leaving subset before the DestinationRule drops it.
    routes = tuple(reversed(routing.routing_actions(ctx, plan)))
    if gone:
        routes += routing.release_version_services(ctx)
    message = f"{survivor} serves 100% of traffic; {leaving} is taken offline"
    drain, left = (None, 0.0) if gone else cleanup.drain(ctx, deployment=leaving)
    if left > 0:
        removal = ()
        message += f" after a drain of {ctx.drain_seconds} s (until {drain.until if drain else ''})"
    reason = Reason.COMPLETED if gone else (Reason.DRAINING if left > 0 else Reason.GOING_OFFLINE)
    return Decision(
        phase=Phase.COMPLETED if gone else ctx.previous.phase,
        reason=reason,
        message=message,
        actions=(*routes, *removal),
        events=(act.Event(type="Normal", reason=Reason.COMPLETED.value, message=message),) if gone else (),
        # Once gone, the hand-over follows at once, after Completed is in status.
        requeue_after=0.0 if gone else max(left, 0.5),
        canary_ready=ctx.canary is not None and workloads.has_ready_pods(ctx.canary),
        plan=plan,
        stable_deployment=ctx.stable["metadata"]["name"] if ctx.stable is not None else None,
        canary_deployment=canary_name(ctx),
        drain=drain,
    )


def _leaving(ctx: Context, *, survivor_is_canary: bool) -> tuple[str, tuple[act.Action, ...], bool]:
    """The version that goes (its name), the writes that remove it, and whether it is gone already."""
    spec = ctx.spec
    if not survivor_is_canary and not spec.canary.provided:
        name = workloads.canary_deployment_name(spec)
        removal = (act.DeleteObject(kind="Deployment", name=name), *cleanup.remove_companions(ctx))
        return name, removal, ctx.canary is None
    # The stable Deployment, or a provided canary: someone else's, so offlineAction says what goes.
    leaving = ctx.canary if not survivor_is_canary else ctx.stable
    if leaving is None:
        version = spec.canary.version if not survivor_is_canary else spec.stable.version
        return f"{spec.service} {version}", (), True
    name = leaving["metadata"]["name"]
    if spec.offline_action is OfflineAction.SCALE_TO_ZERO:
        scaled = int(leaving.get("spec", {}).get("replicas", 1)) == 0
        return name, (act.ScaleDeployment(name=name, replicas=0),), scaled
    return name, (act.DeleteObject(kind="Deployment", name=name),), False
