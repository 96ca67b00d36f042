"""The normal flow: canary by weight or content, blue-green, mirror, analysis steps, take over.

One decision, in steps: build the canary (and its HPA/PDB copies), see whether it may get
traffic, let the analysis move, work out the split the spec asks for, clamp it so that no
version without ready pods gets traffic, then choose the phase and say why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from istio_canary import actions as act
from istio_canary import workloads
from istio_canary.analysis import progression
from istio_canary.istio import sticky, virtual_service
from istio_canary.istio.plan import RoutePlan, StickySession
from istio_canary.models import (
    AnalysisStatus,
    CanaryReleaseStatus,
    Phase,
    Policy,
    Promotion,
    Reason,
    Strategy,
)
from istio_canary.models.analysis import CheckResult, Verdict
from istio_canary.phases import cleanup, gates, offline, routing, teardown
from istio_canary.phases.bypass import bypass_paths
from istio_canary.phases.model import WAIT_SECONDS, Context, Decision
from istio_canary.phases.resolve import (
    canary_name,
    canary_routable,
    image_changed,
    new_image_goes_out,
    revision,
)

__all__ = ["progress"]

# How soon the routes follow new version Services: time for their endpoints to reach the mesh.
PENDING_SECONDS = 2.0


@dataclass(frozen=True, kw_only=True)
class _Split:
    """The traffic a decision gives each version."""

    canary_weight: int
    match: tuple[Any, ...] = ()
    mirror: float | None = None
    sticky: bool = False
    """Sticky canary sessions (traffic.sessionAffinity), while the canary has weight."""


def progress(ctx: Context, *, check: CheckResult | None) -> Decision:
    assert ctx.stable is not None
    canary_body, copies = _canary_objects(ctx)
    ready = canary_routable(ctx, canary_body=canary_body)
    # A canary revision that never had traffic gets none before its PreRollout hooks answered.
    pre = gates.pre_rollout(ctx) if ready else None
    routable = ready and pre is None
    analysis, events = _start_analysis(ctx, canary_ready=routable, canary_body=canary_body)
    take_over = ctx.spec.take_over
    stepped = _analysis_step(ctx, analysis=analysis, check=check, canary_ready=routable)
    hold = pre
    if stepped is not None:
        analysis, events, take_over, early = stepped[0], [*events, *stepped[1]], stepped[2], stepped[3]
        hold = hold or stepped[4]
        if early is not None:
            return replace(early, events=(*events, *early.events), analysis=analysis)
    wanted = _intent(ctx, take_over=take_over, analysis=analysis)
    # Check the routing the spec asks for, not only the routing written now: a rule that cannot
    # be routed (bad regex, match on a TCP port) is refused before the first write, not once the
    # canary is ready and traffic would move.
    virtual_service.check_expressible(plan=_plan(ctx, wanted), ports=ctx.ports)
    split, warning = _clamp(ctx, wanted, canary_ready=routable)
    events.extend(warning)
    plan = _plan(ctx, split)
    routes, pending = _routes(ctx, plan)
    # A provided canary is someone else's: the release only routes to it.
    made = () if ctx.spec.canary.provided else (act.ApplyDeployment(body=canary_body),)
    actions: tuple[act.Action, ...] = (*routes, *made, *(act.ApplyCompanion(kind=c["kind"], body=c) for c in copies))
    deadline = _ready_deadline_passed(ctx) if not ready and ctx.spec.policy is not Policy.PAUSED else None
    if deadline is not None:
        return _never_ready(deadline, actions=actions, analysis=analysis, plan=plan)
    phase, reason, message = _phase(ctx, split=split, canary_ready=routable, take_over=take_over, analysis=analysis)
    if ctx.previous.phase is not phase:
        events.append(act.Event(type="Normal", reason=reason.value, message=message))
    bypass = _bypass(ctx, plan, events)
    waiting = phase is Phase.WAITING_FOR_CANARY or (phase is Phase.PROGRESSING and not ready)
    decision = Decision(
        phase=phase, reason=reason, message=message, actions=actions, events=tuple(events),
        requeue_after=PENDING_SECONDS if pending else (WAIT_SECONDS if waiting else None),
        analysis=analysis,
        canary_ready=ready,
        plan=plan,
        stable_deployment=ctx.stable["metadata"]["name"],
        canary_deployment=canary_name(ctx),
        canary_revision=revision(ctx) if routable else None,
        bypass=bypass,
    )
    return decision if hold is None else _held(ctx, decision, hold, first_traffic=pre is not None)


def _held(ctx: Context, decision: Decision, hold: gates.Hold, *, first_traffic: bool) -> Decision:
    """The decision while a gate holds: its reason, its calls, and a look when the next call is due."""
    message = hold.message if first_traffic else f"{decision.message}; {hold.message}"
    events = (*decision.events, *gates.hold_events(ctx, hold, message=message))
    due = hold.retry_in if decision.requeue_after is None else min(hold.retry_in, decision.requeue_after)
    return replace(
        decision, reason=hold.reason, message=message, calls=hold.calls, gate=hold.gate, events=events,
        requeue_after=due,
    )


def _routes(ctx: Context, plan: RoutePlan) -> tuple[tuple[act.Action, ...], bool]:
    """The routing writes, and whether they are only new version Services (routing mode Services:
    those go first, alone, and the routes follow at the next look)."""
    if ctx.spec.policy is Policy.PAUSED and routing.routing_written(ctx):
        return (), False  # Paused: leave the routing exactly as it is.
    pending = routing.version_services_pending(ctx, plan)
    return pending or routing.routing_actions(ctx, plan), bool(pending)


def _bypass(ctx: Context, plan: RoutePlan, events: list[act.Event]) -> str:
    """How clients may bypass Envoy (a Warning the first time); none when the selector is pinned."""
    seen = ctx.observed
    bypass = "" if plan.version_services else bypass_paths(
        seen.service, namespace_labels=seen.namespace_labels, ingresses=seen.ingresses
    )
    if bypass and not _condition_since(ctx.previous, "MeshOnly", "False"):
        events.append(act.Event(type="Warning", reason="MeshBypass", message=bypass))
    return bypass


def _never_ready(
    message: str, *, actions: tuple[act.Action, ...], analysis: AnalysisStatus | None, plan: RoutePlan
) -> Decision:
    """Failed: the canary had no ready pod for too long; it stays at 0 and its Deployment is kept."""
    return Decision(
        phase=Phase.FAILED,
        reason=Reason.CANARY_NEVER_READY,
        message=message,
        actions=actions,
        events=(act.Event(type="Warning", reason=Reason.CANARY_NEVER_READY.value, message=message),),
        analysis=analysis,
        canary_ready=False,
        plan=plan,
    )


def _canary_objects(ctx: Context) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The canary Deployment to apply and its HPA/PDB copies; a provided canary as it is, and no copies."""
    assert ctx.stable is not None
    if ctx.spec.canary.provided:
        return dict(ctx.canary or {}), []
    canary_body = workloads.build_canary_deployment(
        stable=ctx.stable,
        spec=ctx.spec,
        release_namespace=ctx.release.namespace,
        release_name=ctx.release.name,
        release_uid=ctx.release.uid,
    )
    copies = cleanup.companions(ctx)
    if ctx.canary is not None and any(c["kind"] == workloads.HPA for c in copies):
        # Its own HPA scales the canary now; the operator only set the replicas to start with.
        canary_body["spec"].pop("replicas", None)
    return canary_body, copies


def _start_analysis(
    ctx: Context, *, canary_ready: bool, canary_body: dict[str, Any]
) -> tuple[AnalysisStatus | None, list[act.Event]]:
    """Where the analysis stands; a new canary image starts it again from its first step."""
    changed = image_changed(ctx)
    analysis = progression.start(
        spec=ctx.spec,
        # Evidence about the old image says nothing about the new one.
        previous=None if changed else ctx.previous.analysis,
        previous_phase=ctx.previous.phase,
        canary_routable=canary_ready,
        now=ctx.now,
    )
    # Said once: by the decision that writes the new image into the canary.
    if not changed or not new_image_goes_out(ctx, canary_body=canary_body):
        return analysis, []
    restart = "; the analysis starts again from its first step" if ctx.spec.analysis is not None else ""
    name = canary_body["metadata"]["name"]
    message = f"new canary image: rolling out {name}; it gets no traffic until its new pods are ready{restart}"
    return analysis, [act.Event(type="Normal", reason="CanaryUpdated", message=message)]


_Stepped = tuple[AnalysisStatus, list[act.Event], str, Decision | None, gates.Hold | None]


def _analysis_step(
    ctx: Context, *, analysis: AnalysisStatus | None, check: CheckResult | None, canary_ready: bool
) -> _Stepped | None:
    """The analysis' move: (status, events, take over, a decision that ends here, a gate that holds);
    None: no analysis now.

    A person's takeOver or Paused overrides the analysis; spec.abort never gets here.
    """
    spec = ctx.spec
    if analysis is None or spec.analysis is None or spec.take_over or spec.policy is Policy.PAUSED:
        return None
    # A look taken while the canary cannot be routed to says nothing about this step.
    step = progression.advance(spec=spec.analysis, status=analysis, check=check if canary_ready else None, now=ctx.now)
    events = list(step.events)
    if step.outcome is progression.Outcome.ROLLBACK:
        cause = progression.rollback_cause(spec=spec.analysis, status=step.status)
        down = teardown.tear_down(ctx, reason=Reason.ANALYSIS_FAILED, cause=cause)
        # Counted once: on the decision that reaches Aborted.
        return step.status, events, "", replace(down, rolled_back=down.phase is Phase.ABORTED), None
    gate = _gate_of(ctx, before=analysis, after=step.status)
    hold = gates.step_gate(ctx, gate=gate) if gate and canary_ready else None
    if hold is not None:
        # The weight stays; the step is taken at the next look that passes once the gate is open.
        kept = {k: getattr(analysis, k) for k in ("step", "weight", "step_started_at", "evidence")}
        return step.status.model_copy(update=kept), [], "", None, hold
    if step.outcome is progression.Outcome.PROMOTE and canary_ready:
        if spec.analysis.promotion is Promotion.OFFLINE:
            survivor = spec.canary.version
            return step.status, events, survivor, offline.go_offline(ctx, survivor=survivor), None
        return step.status, events, spec.canary.version, None, None
    return step.status, events, "", None, None


def _gate_of(ctx: Context, *, before: AnalysisStatus, after: AnalysisStatus) -> str:
    """The gate the analysis passes now (``weight-N`` or ``promotion``), or the one it holds at; "" if none."""
    assert ctx.spec.analysis is not None
    weights = ctx.spec.analysis.weights()
    if before.step >= len(weights):
        return ""  # promoted already
    if after.step > before.step:
        return "promotion" if after.step >= len(weights) else f"weight-{after.weight}"
    upcoming = "promotion" if before.step + 1 >= len(weights) else f"weight-{weights[before.step + 1]}"
    held = ctx.previous.gate
    return upcoming if held is not None and held.gate == upcoming else ""


def _intent(ctx: Context, *, take_over: str, analysis: AnalysisStatus | None) -> _Split:
    """The split the spec (or the analysis) asks for."""
    spec = ctx.spec
    if take_over:
        return _Split(canary_weight=100 if take_over == spec.canary.version else 0)
    if spec.strategy is Strategy.BLUE_GREEN:
        # Test requests (a header, say) reach the new version before it takes over.
        return _Split(canary_weight=0, match=tuple(spec.traffic.match))
    if spec.strategy is Strategy.MIRROR:
        mirrored = float(analysis.weight) if analysis is not None else spec.traffic.mirror_percent
        return _Split(canary_weight=0, mirror=mirrored)
    weight = analysis.weight if analysis is not None else spec.traffic.weight
    affinity = spec.traffic.session_affinity is not None
    return _Split(canary_weight=weight, match=tuple(spec.traffic.match), sticky=affinity)


def _clamp(ctx: Context, wanted: _Split, *, canary_ready: bool) -> tuple[_Split, list[act.Event]]:
    """The invariant: never route to a version without ready pods."""
    assert ctx.stable is not None
    if not canary_ready:
        return _Split(canary_weight=0), []
    if wanted.canary_weight < 100 and not workloads.has_ready_pods(ctx.stable):
        message = f"stable {ctx.spec.stable.version} has no ready pod: its share goes to the canary"
        return replace(wanted, canary_weight=100), [act.Event(type="Warning", reason="StableNotReady", message=message)]
    return wanted, []


def _plan(ctx: Context, split: _Split) -> RoutePlan:
    return routing.plan(
        ctx,
        stable_weight=100 - split.canary_weight,
        canary_weight=split.canary_weight,
        match=split.match,
        mirror=split.mirror,
        sticky=_session(ctx, split),
    )


def _session(ctx: Context, split: _Split) -> StickySession | None:
    """The sticky session of this split: only while the canary has weight, named after its revision."""
    affinity = ctx.spec.traffic.session_affinity
    if not split.sticky or affinity is None or split.canary_weight == 0:
        return None
    value = sticky.cookie_value(canary_version=ctx.spec.canary.version, revision=revision(ctx))
    return StickySession(cookie_name=affinity.cookie_name, value=value, max_age=affinity.max_age)


def _phase(
    ctx: Context, *, split: _Split, canary_ready: bool, take_over: str, analysis: AnalysisStatus | None
) -> tuple[Phase, Reason, str]:
    spec = ctx.spec
    if spec.policy is Policy.PAUSED:
        return Phase.PAUSED, Reason.PAUSED, "paused: workloads are kept, routing is left as it is"
    if not canary_ready:
        phase = Phase.PROGRESSING if spec.policy is Policy.IMMEDIATELY else Phase.WAITING_FOR_CANARY
        name = canary_name(ctx)
        return phase, Reason.CANARY_NOT_READY, f"waiting for Deployment {name} to have ready pods; it gets no traffic"
    if take_over:
        return (
            Phase.TAKEN_OVER,
            Reason.TAKEN_OVER,
            f"{take_over} receives 100% of traffic; the other version keeps running",
        )
    message = _describe(ctx, split)
    if analysis is not None:
        verdict = analysis.last_verdict.value if analysis.last_verdict else "none"
        message += f" (analysis step {analysis.step + 1}, last verdict {verdict}{_holding_because(analysis)})"
    return Phase.PROGRESSING, Reason.PROGRESSING, message


def _holding_because(analysis: AnalysisStatus) -> str:
    """Why a look that cannot judge held the weight (": Prometheus at URL answered HTTP 401"), or ""."""
    holding = (Verdict.UNREACHABLE, Verdict.NO_DATA, Verdict.BAD_DATA)
    if analysis.last_verdict not in holding or not analysis.history:
        return ""
    return f": {analysis.history[-1].reason}"


def _describe(ctx: Context, split: _Split) -> str:
    stable, canary = ctx.spec.stable.version, ctx.spec.canary.version
    if split.mirror is not None:
        return f"{stable} serves all requests; {split.mirror:g}% are mirrored to {canary}"
    text = f"{100 - split.canary_weight}% to {stable}, {split.canary_weight}% to {canary}"
    if split.match:
        text += f"; requests matching {len(ctx.spec.traffic.match)} rule(s) go to {canary}"
    affinity = ctx.spec.traffic.session_affinity
    if split.sticky and affinity is not None and split.canary_weight:
        text += f"; clients {canary} served keep to it by cookie {affinity.cookie_name}"
    return text


def _ready_deadline_passed(ctx: Context) -> str | None:
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
