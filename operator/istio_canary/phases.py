"""The state machine: every phase transition of a CanaryRelease, as one pure function.

``decide`` takes the spec, what the cluster holds now, the analysis verdict and the time, and
returns the phase plus the ordered writes that move the cluster towards the spec. It reads no
clock and calls no API, so a reconcile that is killed half-way is simply decided again by the
next operator process from what it finds (restart safety by construction).

Ordering rules the actions follow, because Envoy answers 503 for a subset it does not know and
the Service's selector matches the canary's pods too:

* routes pin traffic to stable *before* the canary Deployment exists;
* a DestinationRule gains a subset before a VirtualService points at it, and a VirtualService
  stops pointing at a subset before the DestinationRule loses it;
* on abort the canary is removed while routes still pin stable, and the user's original
  routing comes back only once the canary is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from istio_canary import actions as act
from istio_canary import errors, workloads
from istio_canary.analysis import progression
from istio_canary.istio import destination_rule, ownership, virtual_service
from istio_canary.istio import plan as routeplan
from istio_canary.istio.plan import RoutePlan, ServicePort
from istio_canary.models import (
    AnalysisStatus,
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    DrainStatus,
    OfflineAction,
    Phase,
    Policy,
    Promotion,
    Strategy,
)
from istio_canary.models.analysis import CheckResult

__all__ = ["DEFAULT_DRAIN_SECONDS", "Decision", "Observed", "ReleaseRef", "decide", "failed", "refused"]

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
    deployments: tuple[dict[str, Any], ...] = ()
    virtual_service: dict[str, Any] | None = None
    destination_rule: dict[str, Any] | None = None
    autoscalers: tuple[dict[str, Any], ...] = ()
    """HorizontalPodAutoscalers in the namespace."""
    disruption_budgets: tuple[dict[str, Any], ...] = ()
    """PodDisruptionBudgets in the namespace."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    phase: Phase
    reason: str
    message: str
    actions: tuple[act.Action, ...] = ()
    events: tuple[act.Event, ...] = ()
    requeue_after: float | None = None
    invalid: bool = False
    """The spec or the objects it names are unusable; the user has to change something."""
    done: bool = False
    """Deleting: everything the release changed is undone; the finalizer may go."""
    analysis: AnalysisStatus | None = None
    canary_ready: bool | None = None
    plan: RoutePlan | None = None
    stable_deployment: str | None = None
    canary_revision: str | None = None
    """The canary images that may receive traffic (None: keep the previous status value)."""
    drain: DrainStatus | None = None
    """A Deployment that lost its traffic and waits for ``drain.until`` before it goes."""


@dataclass(frozen=True, kw_only=True)
class _Context:
    release: ReleaseRef
    spec: CanaryReleaseSpec
    observed: Observed
    previous: CanaryReleaseStatus
    now: datetime
    drain_seconds: int = DEFAULT_DRAIN_SECONDS
    ports: tuple[ServicePort, ...] = ()
    stable: dict[str, Any] | None = None
    canary: dict[str, Any] | None = None


def decide(
    *,
    release: ReleaseRef,
    spec: CanaryReleaseSpec,
    observed: Observed,
    previous: CanaryReleaseStatus,
    now: datetime,
    check: CheckResult | None = None,
    drain_seconds: int = DEFAULT_DRAIN_SECONDS,
) -> Decision:
    """The next phase and the writes that get there.

    ``check`` is the analysis judge's latest look at the metrics (only when ``spec.analysis``
    is set and the release is progressing); ``None`` means no new look this time.
    ``drain_seconds`` is the operator's default for ``spec.drainSeconds``.
    """
    drain = spec.drain_seconds if spec.drain_seconds is not None else drain_seconds
    ctx = _Context(release=release, spec=spec, observed=observed, previous=previous, now=now, drain_seconds=drain)
    if previous.phase is Phase.COMPLETED:
        # Deleted or not, a completed release only hands over what outlives it (and removes nothing).
        # Only once Completed is in status: a hand-over lost to a restart before that would leave
        # a TakenOver release looking at a canary that no longer carries its marks.
        hand_over = _hand_over(ctx)
        return Decision(
            phase=Phase.COMPLETED, reason="Completed", message=previous.message, actions=hand_over, done=True,
            requeue_after=0.0 if hand_over else None,
        )
    if release.deleting:
        return _tear_down(ctx, final_phase=previous.phase, reason="Deleting", deleting=True)
    if previous.phase is Phase.ABORTED and (
        spec.abort or previous.observed_generation in (None, release.generation)
    ):
        # Aborted stays aborted until the user changes the spec (for example sets abort back to false).
        return _tear_down(ctx, final_phase=Phase.ABORTED, reason=_abort_reason(previous), deleting=False)
    if spec.abort:
        return _tear_down(ctx, final_phase=Phase.ABORTED, reason="Aborted", deleting=False)

    # Job offline: asked in the spec, or the promotion of a canary that passed its analysis.
    survivor = spec.take_over if spec.offline else progression.offline_survivor(spec=spec, status=previous.analysis)
    try:
        # After job offline to the canary, the stable Deployment is gone on purpose.
        ctx = _resolve_workloads(ctx, stable_may_be_gone=survivor == spec.canary.version)
    except errors.InvalidSpecError as err:
        return _failed(ctx, reason=type(err).__name__.removesuffix("Error"), message=str(err))

    try:
        if survivor and _survivor_ready(ctx, survivor):
            return _go_offline(ctx, survivor=survivor)
        # Not ready to go offline yet (e.g. offline asked at creation): bring the survivor up first.
        return _progress(ctx, check=check)
    except errors.InvalidSpecError as err:
        return _failed(ctx, reason=type(err).__name__.removesuffix("Error"), message=str(err))


# -- resolving the workloads ------------------------------------------------------------------


def _resolve_workloads(ctx: _Context, *, stable_may_be_gone: bool = False) -> _Context:
    spec, observed = ctx.spec, ctx.observed
    if observed.service is None:
        raise errors.ServiceNotFoundError(
            f"Service {ctx.release.namespace}/{spec.service} not found: "
            "spec.service must name a Service in the release's namespace"
        )
    selector = dict(observed.service.get("spec", {}).get("selector") or {})
    ports = routeplan.service_ports(observed.service)
    stable: dict[str, Any] | None
    try:
        stable = workloads.find_stable_deployment(
            deployments=list(observed.deployments),
            service_selector=selector,
            version_label=spec.version_label,
            version=spec.stable.version,
        )
    except errors.StableDeploymentNotFoundError:
        if not stable_may_be_gone:
            raise
        stable = None
    canary_name = workloads.canary_deployment_name(spec)
    canary = next((d for d in observed.deployments if d["metadata"]["name"] == canary_name), None)
    if canary is not None and not workloads.is_created_by(
        deployment=canary, release_namespace=ctx.release.namespace, release_name=ctx.release.name
    ):
        raise errors.DeploymentConflictError(
            f"Deployment {canary_name} already exists and was not created by this release; "
            "the operator never overwrites a Deployment it did not create: "
            "delete it or choose another canary.version"
        )
    return replace(ctx, ports=tuple(ports), stable=stable, canary=canary)


# -- the normal flow: canary, blue-green, mirror, take over ------------------------------------


def _image_changed(ctx: _Context) -> bool:
    """Did the user ask for a new canary image since the canary last received traffic?"""
    previous = ctx.previous.canary_revision
    return previous is not None and previous != workloads.canary_revision(ctx.spec)


def _canary_routable(ctx: _Context, *, canary_body: dict[str, Any]) -> bool:
    """May the canary receive traffic? Full rollout first under WaitForWorkloadReady.

    After an image change on a live release, the old image's pods are still ready while the
    new ones roll out: no traffic until every pod runs the image now asked for.
    """
    if ctx.canary is None or not workloads.has_ready_pods(ctx.canary):
        return False
    if _image_changed(ctx) and ctx.spec.policy is not Policy.IMMEDIATELY:
        stored_current = workloads.deployment_patch(current=ctx.canary, desired=canary_body) is None
        return stored_current and workloads.rolled_out(ctx.canary)
    if ctx.spec.policy is Policy.WAIT_FOR_WORKLOAD_READY and ctx.previous.phase not in (
        Phase.PROGRESSING,
        Phase.TAKEN_OVER,
        Phase.PAUSED,
    ):
        desired = int(ctx.canary.get("spec", {}).get("replicas", 1))
        return workloads.ready_replicas(ctx.canary) >= max(desired, 1)
    return True


def _progress(ctx: _Context, *, check: CheckResult | None) -> Decision:
    spec = ctx.spec
    assert ctx.stable is not None
    canary_body = workloads.build_canary_deployment(
        stable=ctx.stable,
        spec=spec,
        release_namespace=ctx.release.namespace,
        release_name=ctx.release.name,
        release_uid=ctx.release.uid,
    )
    companions = _companions(ctx)
    if ctx.canary is not None and any(c["kind"] == workloads.HPA for c in companions):
        # Its own HPA scales the canary now; the operator only set the replicas to start with.
        canary_body["spec"].pop("replicas", None)
    stable_ready = workloads.has_ready_pods(ctx.stable)
    canary_ready = _canary_routable(ctx, canary_body=canary_body)
    image_changed = _image_changed(ctx)
    analysis = progression.start(
        spec=spec,
        # Evidence about the old image says nothing about the new one: start from the first step.
        previous=None if image_changed else ctx.previous.analysis,
        previous_phase=ctx.previous.phase,
        canary_routable=canary_ready,
        now=ctx.now,
    )
    events: list[act.Event] = []
    if image_changed and ctx.previous.phase is not Phase.WAITING_FOR_CANARY:
        events.append(act.Event(
            type="Normal",
            reason="CanaryUpdated",
            message=f"new canary image: rolling out {canary_body['metadata']['name']}; "
            "it gets no traffic until its new pods are ready"
            + ("; the analysis starts again from its first step" if spec.analysis is not None else ""),
        ))

    take_over = spec.take_over
    # A person's takeOver or Paused overrides the analysis; spec.abort never gets here.
    if analysis is not None and spec.analysis is not None and not take_over and spec.policy is not Policy.PAUSED:
        # A look taken while the canary cannot be routed to says nothing about this step.
        step = progression.advance(spec=spec.analysis, status=analysis, check=check if canary_ready else None, now=ctx.now)
        analysis = step.status
        events.extend(step.events)
        if step.outcome is progression.Outcome.ROLLBACK:
            cause = progression.rollback_cause(spec=spec.analysis, status=analysis)
            down = _tear_down(ctx, final_phase=Phase.ABORTED, reason="AnalysisFailed", deleting=False, cause=cause)
            return replace(down, events=(*events, *down.events), analysis=analysis)
        if step.outcome is progression.Outcome.PROMOTE and canary_ready:
            take_over = spec.canary.version
            if spec.analysis.promotion is Promotion.OFFLINE:
                offline = _go_offline(ctx, survivor=take_over)
                return replace(offline, events=(*events, *offline.events), analysis=analysis)

    canary_weight, match, mirror = _intent(ctx, take_over=take_over, analysis=analysis)
    stable_weight = 100 - canary_weight
    # Check the routing the spec asks for, not only the routing written now: a rule that cannot
    # be routed (bad regex, match on a TCP port) is refused before the first write, not once the
    # canary is ready and traffic would move.
    intended = _plan(ctx, stable_weight=stable_weight, canary_weight=canary_weight, match=match, mirror=mirror)
    virtual_service.check_expressible(plan=intended, ports=ctx.ports)
    reason, message = "", ""

    # The invariant: never route to a version without ready pods.
    if not canary_ready:
        canary_weight, stable_weight, match, mirror = 0, 100, (), None
    elif not stable_ready and stable_weight > 0:
        canary_weight, stable_weight = 100, 0
        events.append(
            act.Event(
                type="Warning",
                reason="StableNotReady",
                message=f"stable {spec.stable.version} has no ready pod: its share goes to the canary",
            )
        )

    plan = _plan(ctx, stable_weight=stable_weight, canary_weight=canary_weight, match=match, mirror=mirror)
    routing = _routing_actions(ctx, plan)
    if spec.policy is Policy.PAUSED and _routing_written(ctx):
        routing = ()  # Paused: leave the routing exactly as it is.
    actions: tuple[act.Action, ...] = (
        *routing,
        act.ApplyDeployment(body=canary_body),
        *(act.ApplyCompanion(kind=c["kind"], body=c) for c in companions),
    )

    if spec.policy is Policy.PAUSED:
        phase, reason = Phase.PAUSED, "Paused"
        message = "paused: workloads are kept, routing is left as it is"
    elif not canary_ready:
        phase, reason = Phase.WAITING_FOR_CANARY, "CanaryNotReady"
        message = f"waiting for Deployment {canary_body['metadata']['name']} to have ready pods; it gets no traffic"
        if spec.policy is Policy.IMMEDIATELY:
            phase = Phase.PROGRESSING
        deadline = _ready_deadline_passed(ctx)
        if deadline is not None:
            return Decision(
                phase=Phase.FAILED,
                reason="CanaryNeverReady",
                message=deadline,
                actions=actions,
                events=(act.Event(type="Warning", reason="CanaryNeverReady", message=deadline),),
                analysis=analysis,
                canary_ready=False,
                plan=plan,
            )
    elif take_over:
        phase, reason = Phase.TAKEN_OVER, "TakenOver"
        message = f"{take_over} receives 100% of traffic; the other version keeps running"
    else:
        phase, reason = Phase.PROGRESSING, "Progressing"
        message = _describe(spec, canary_weight=canary_weight, match=bool(match), mirror=mirror)
    if analysis is not None and phase is Phase.PROGRESSING:
        message += f" (analysis step {analysis.step + 1}, last verdict {analysis.last_verdict.value if analysis.last_verdict else 'none'})"

    if ctx.previous.phase is not phase:
        events.append(act.Event(type="Normal", reason=reason, message=message))
    waiting = phase in (Phase.WAITING_FOR_CANARY,) or (phase is Phase.PROGRESSING and not canary_ready)
    return Decision(
        phase=phase,
        reason=reason,
        message=message,
        actions=actions,
        events=tuple(events),
        requeue_after=WAIT_SECONDS if waiting else None,
        analysis=analysis,
        canary_ready=canary_ready,
        plan=plan,
        stable_deployment=ctx.stable["metadata"]["name"],
        canary_revision=workloads.canary_revision(spec) if canary_ready else None,
    )


def _intent(
    ctx: _Context, *, take_over: str, analysis: AnalysisStatus | None
) -> tuple[int, tuple[Any, ...], float | None]:
    """Canary weight, match rules and mirror percent that the spec asks for."""
    spec = ctx.spec
    if take_over:
        return (100 if take_over == spec.canary.version else 0), (), None
    if spec.strategy is Strategy.BLUE_GREEN:
        return 0, (), None
    if spec.strategy is Strategy.MIRROR:
        return 0, (), spec.traffic.mirror_percent
    weight = analysis.weight if analysis is not None else spec.traffic.weight
    return weight, tuple(spec.traffic.match), None


def _describe(spec: CanaryReleaseSpec, *, canary_weight: int, match: bool, mirror: float | None) -> str:
    if mirror is not None:
        return f"{spec.stable.version} serves all requests; {mirror:g}% are mirrored to {spec.canary.version}"
    text = f"{100 - canary_weight}% to {spec.stable.version}, {canary_weight}% to {spec.canary.version}"
    if match:
        text += f"; requests matching {len(spec.traffic.match)} rule(s) go to {spec.canary.version}"
    return text


def _ready_deadline_passed(ctx: _Context) -> str | None:
    analysis = ctx.spec.analysis
    if analysis is None:
        return None
    since = _condition_since(ctx.previous, "CanaryReady", "False")
    if since is None or ctx.now - since < timedelta(seconds=analysis.ready_deadline_seconds):
        return None
    return (
        f"canary {ctx.spec.canary.version} had no ready pod for {analysis.ready_deadline_seconds} s "
        "(analysis.readyDeadlineSeconds); its traffic stays at 0"
    )


def _condition_since(status: CanaryReleaseStatus, type_: str, value: str) -> datetime | None:
    for cond in status.conditions:
        if cond.type == type_ and cond.status == value:
            return datetime.fromisoformat(cond.last_transition_time)
    return None


# -- job offline ------------------------------------------------------------------------------


def _survivor_ready(ctx: _Context, survivor: str) -> bool:
    survivor_dep = ctx.canary if survivor == ctx.spec.canary.version else ctx.stable
    return survivor_dep is not None and workloads.has_ready_pods(survivor_dep)


def _go_offline(ctx: _Context, *, survivor: str) -> Decision:
    spec = ctx.spec
    survivor_is_canary = survivor == spec.canary.version

    plan = _plan(
        ctx,
        stable_weight=0 if survivor_is_canary else 100,
        canary_weight=100 if survivor_is_canary else 0,
        subsets=(survivor,),
    )
    # Stop pointing at the leaving subset before the DestinationRule drops it.
    routing = tuple(reversed(_routing_actions(ctx, plan)))
    removal: tuple[act.Action, ...]
    if survivor_is_canary:
        if ctx.stable is None:
            leaving, gone, removal = f"{spec.service} {spec.stable.version}", True, ()
        elif spec.offline_action is OfflineAction.SCALE_TO_ZERO:
            leaving = ctx.stable["metadata"]["name"]
            removal = (act.ScaleDeployment(name=leaving, replicas=0),)
            gone = int(ctx.stable.get("spec", {}).get("replicas", 1)) == 0
        else:
            leaving, gone = ctx.stable["metadata"]["name"], False
            removal = (act.DeleteObject(kind="Deployment", name=leaving),)
    else:
        leaving = workloads.canary_deployment_name(spec)
        removal = (act.DeleteObject(kind="Deployment", name=leaving), *_remove_companions(ctx))
        gone = ctx.canary is None
    message = f"{survivor} serves 100% of traffic; {leaving} is taken offline"
    drain, left = (None, 0.0) if gone else _drain(ctx, deployment=leaving)
    if left > 0:
        removal = ()
        message += f" after a drain of {ctx.drain_seconds} s (until {drain.until if drain else ''})"
    phase = Phase.COMPLETED if gone else ctx.previous.phase
    events = (act.Event(type="Normal", reason="Completed", message=message),) if gone else ()
    return Decision(
        phase=phase,
        reason="Completed" if gone else ("Draining" if left > 0 else "GoingOffline"),
        message=message,
        actions=(*routing, *removal),
        events=events,
        requeue_after=0.0 if gone else max(left, 0.5),  # gone: the hand-over follows at once
        canary_ready=ctx.canary is not None and workloads.has_ready_pods(ctx.canary),
        plan=plan,
        stable_deployment=ctx.stable["metadata"]["name"] if ctx.stable is not None else None,
        drain=drain,
    )


def _drain(ctx: _Context, *, deployment: str) -> tuple[DrainStatus, float]:
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


def _hand_over(ctx: _Context) -> tuple[act.Action, ...]:
    """Take this release's marks off the routing and the surviving canary, so the next release starts clean."""
    actions: list[act.Action] = []
    for kind, obj in (("DestinationRule", ctx.observed.destination_rule), ("VirtualService", ctx.observed.virtual_service)):
        patch = ownership.hand_over_patch(obj, release_name=ctx.release.name) if obj is not None else None
        if obj is not None and patch is not None:
            actions.append(act.PatchObject(kind=kind, name=obj["metadata"]["name"], patch=patch))  # type: ignore[arg-type]
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


def _workload_objects(
    ctx: _Context, *, deployments: tuple[dict[str, Any], ...] = ()
) -> list[tuple[act.WorkloadKind, dict[str, Any]]]:
    listed: list[tuple[act.WorkloadKind, dict[str, Any]]] = [("Deployment", d) for d in deployments]
    listed += [("HorizontalPodAutoscaler", o) for o in ctx.observed.autoscalers]
    listed += [("PodDisruptionBudget", o) for o in ctx.observed.disruption_budgets]
    return listed


def _companions(ctx: _Context) -> list[dict[str, Any]]:
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


def _ours_or_absent(ctx: _Context, obj: dict[str, Any] | None) -> bool:
    return obj is None or workloads.is_created_by(
        deployment=obj, release_namespace=ctx.release.namespace, release_name=ctx.release.name
    )


def _remove_companions(ctx: _Context) -> tuple[act.Action, ...]:
    """Delete the canary's HPA and PDB copies (those this release made and that still exist)."""
    return tuple(
        act.DeleteObject(kind=kind, name=obj["metadata"]["name"])
        for kind, obj in _workload_objects(ctx)
        if workloads.is_created_by(deployment=obj, release_namespace=ctx.release.namespace, release_name=ctx.release.name)
    )


# -- abort and delete -------------------------------------------------------------------------


def _abort_reason(previous: CanaryReleaseStatus) -> str:
    for cond in previous.conditions:
        if cond.type == "Ready" and cond.reason in ("Aborted", "AnalysisFailed"):
            return cond.reason
    return "Aborted"


def _tear_down(ctx: _Context, *, final_phase: Phase, reason: str, deleting: bool, cause: str = "") -> Decision:
    """Undo the release: pin stable, remove the canary, then give back the original routing.

    ``cause`` says why the operator itself rolls back (analysis); it leads every message.
    """
    spec, observed = ctx.spec, ctx.observed
    canary_name = workloads.canary_deployment_name(spec)
    canary = next((d for d in observed.deployments if d["metadata"]["name"] == canary_name), None)
    ours = canary is not None and workloads.is_created_by(
        deployment=canary, release_namespace=ctx.release.namespace, release_name=ctx.release.name
    )
    if ours and observed.service is not None:
        plan = _plan(ctx, stable_weight=100, canary_weight=0)
        pin = _routing_actions(ctx, plan) if _routing_written(ctx) else ()
        message = f"rolling back: 100% to {spec.stable.version}, removing {canary_name}"
        if cause:
            message = f"rolling back ({cause}): 100% to {spec.stable.version}, removing {canary_name}"
        # Only a canary that may have had traffic needs a drain.
        drain, left = _drain(ctx, deployment=canary_name) if pin else (None, 0.0)
        removal: tuple[act.Action, ...] = (act.DeleteObject(kind="Deployment", name=canary_name), *_remove_companions(ctx))
        if left > 0:
            removal = ()
            message += f" after a drain of {ctx.drain_seconds} s"
        return Decision(
            phase=ctx.previous.phase,
            reason="Draining" if left > 0 else "Aborting",
            message=message,
            actions=(*pin, *removal),
            requeue_after=max(left, 0.5),
            plan=plan,
            drain=drain,
        )
    if ours:  # the Service is gone: nothing to route, just remove what we made
        return Decision(
            phase=ctx.previous.phase,
            reason="Aborting",
            message=f"removing {canary_name}",
            actions=(act.DeleteObject(kind="Deployment", name=canary_name), *_remove_companions(ctx)),
            requeue_after=0.5,
        )
    restore: tuple[act.Action, ...] = (
        *_remove_companions(ctx),  # left over when a restart came between the canary's removal and theirs
        act.RestoreRouting(kind="VirtualService", name=_routing_name(observed.virtual_service, spec.service)),
        act.RestoreRouting(kind="DestinationRule", name=_routing_name(observed.destination_rule, spec.service)),
    )
    if deleting:
        return Decision(
            phase=final_phase,
            reason=reason,
            message="release deleted: original routing restored, canary removed",
            actions=restore,
            done=True,
        )
    message = f"aborted: 100% to {spec.stable.version}, {canary_name} removed, original routing restored"
    if cause:
        message = f"aborted ({cause}): 100% to {spec.stable.version}, {canary_name} removed, original routing restored"
    if reason == "AnalysisFailed" and ctx.previous.message.startswith("aborted"):
        message = ctx.previous.message
    events = () if ctx.previous.phase is Phase.ABORTED else (act.Event(type="Normal", reason=reason, message=message),)
    return Decision(phase=Phase.ABORTED, reason=reason, message=message, actions=restore, events=events)


def refused(*, previous: CanaryReleaseStatus, error: errors.InvalidSpecError, reason: str | None = None) -> Decision:
    """Failed, with the error's message: the spec (or a write the API server refused) cannot be carried out.

    Nothing is written and traffic stays as it is; the release is looked at again later, so it
    proceeds by itself once the cause is gone (a Service applied after the release, say).
    """
    message = str(error)
    reason = reason or type(error).__name__.removesuffix("Error")
    events: tuple[act.Event, ...] = ()
    if previous.phase is not Phase.FAILED or previous.message != message:
        events = (act.Event(type="Warning", reason=reason, message=message),)
    return Decision(
        phase=Phase.FAILED,
        reason=reason,
        message=message,
        events=events,
        invalid=True,
        requeue_after=RETRY_INVALID_SECONDS,
    )


def failed(*, previous: CanaryReleaseStatus, classified: errors.Classified, retry_after: float) -> Decision:
    """What an error raised while reconciling leaves in status (``errors.classify`` sorted it).

    An unusable spec or object (another release's routing, a write the API server refused) is
    ``Failed``; a transient error keeps the phase and says it is retrying. Both are looked at
    again after ``retry_after`` and proceed by themselves once the cause is gone.
    """
    if classified.disposition is errors.Disposition.INVALID:
        decision = refused(
            previous=previous, error=errors.InvalidSpecError(classified.message), reason=classified.reason
        )
        return replace(decision, requeue_after=retry_after, drain=previous.drain)
    message = f"{classified.message} (retrying in {retry_after:g} s)"
    events: tuple[act.Event, ...] = ()
    if classified.message not in previous.message:
        events = (act.Event(type="Warning", reason=classified.reason, message=message),)
    return Decision(
        phase=previous.phase,
        reason=classified.reason,
        message=message,
        events=events,
        requeue_after=retry_after,
        drain=previous.drain,
    )


# -- helpers ----------------------------------------------------------------------------------


def _failed(ctx: _Context, *, reason: str, message: str) -> Decision:
    return refused(previous=ctx.previous, error=errors.InvalidSpecError(message), reason=reason)


def _plan(
    ctx: _Context,
    *,
    stable_weight: int,
    canary_weight: int,
    match: tuple[Any, ...] = (),
    mirror: float | None = None,
    subsets: tuple[str, ...] | None = None,
) -> RoutePlan:
    spec = ctx.spec
    return RoutePlan(
        service=spec.service,
        namespace=ctx.release.namespace,
        version_label=spec.version_label,
        stable_version=spec.stable.version,
        canary_version=spec.canary.version,
        subsets=subsets if subsets is not None else (spec.stable.version, spec.canary.version),
        stable_weight=stable_weight,
        canary_weight=canary_weight,
        match=match,
        mirror_percent=mirror,
    )


def _routing_actions(ctx: _Context, plan: RoutePlan) -> tuple[act.Action, ...]:
    """DestinationRule first (subsets exist before routes use them), then the VirtualService."""
    ports = list(ctx.ports) or routeplan.service_ports(ctx.observed.service or {})
    dr = destination_rule.build_destination_rule(
        plan=plan, existing=ctx.observed.destination_rule, release_name=ctx.release.name
    )
    vs = virtual_service.build_virtual_service(
        plan=plan, ports=ports, existing=ctx.observed.virtual_service, release_name=ctx.release.name
    )
    return (act.ApplyRouting(kind="DestinationRule", body=dr), act.ApplyRouting(kind="VirtualService", body=vs))


def _routing_written(ctx: _Context) -> bool:
    """Has this release already written (created or adopted) the VirtualService?"""
    vs = ctx.observed.virtual_service
    labels = (vs or {}).get("metadata", {}).get("labels") or {}
    return labels.get(ownership.RELEASE_LABEL) == ctx.release.name


def _routing_name(obj: dict[str, Any] | None, default: str) -> str:
    return str(obj["metadata"]["name"]) if obj is not None else default
