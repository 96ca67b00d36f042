"""Gates: where a release holds for a webhook's 2xx or a person's approval, and what hooks roll it back.

Pure, like the rest of ``phases``: a gate's decision says which calls are due (``Decision.calls``)
and the reconciler makes them; their answers come back through ``status.webhooks`` and are read
by the next decision. A hook that has not answered is asked again every analysis interval (10 s
without an analysis), never at every look.

* ``ConfirmRollout``: before the canary is created (:func:`confirm_rollout`);
* ``PreRollout``: once the canary is ready, before its first traffic (:func:`pre_rollout`);
* ``ConfirmTrafficIncrease`` and ``analysis.approvals`` ``beforeWeight``, ``ConfirmPromotion``
  and ``beforePromotion``: before the analysis moves on (:func:`step_gate`);
* a failed ``PreRollout`` or a ``Rollback`` hook's 2xx rolls the release back (:func:`rollback_cause`);
* ``Rollback`` polling, ``Event`` and ``PostRollout`` calls are added to any decision (:func:`finish`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from istio_canary import actions as act
from istio_canary.hooks import plan
from istio_canary.models import Phase, Reason
from istio_canary.models.hooks import (
    Approve,
    GateKind,
    GateStatus,
    HookType,
    Webhook,
    WebhooksStatus,
)
from istio_canary.phases.model import Context, Decision
from istio_canary.phases.resolve import revision

__all__ = ["Hold", "confirm_rollout", "finish", "hold_events", "pre_rollout", "rollback_cause", "state", "step_gate"]

# How soon a decision that made gate calls looks again: their answers are in status by then.
ANSWER_SECONDS = 1.0
_ACTED_ON = ("confirm-rollout", "pre-rollout", "promotion", "rollback")


@dataclass(frozen=True, kw_only=True)
class Hold:
    """A gate that holds: what it waits for, the calls due now, and when to look again."""

    gate: GateStatus
    calls: tuple[act.CallWebhook, ...]
    reason: Reason
    message: str
    retry_in: float


def state(ctx: Context, *, staying_aborted: bool = False) -> WebhooksStatus | None:
    """The webhooks' answers so far; an aborted release that starts again forgets them."""
    previous = ctx.previous.webhooks
    if previous is not None and ctx.previous.phase is Phase.ABORTED and not staying_aborted:
        return previous.model_copy(update={"passed": [], "failed": []})
    return previous


def confirm_rollout(ctx: Context) -> Decision | None:
    """Pending, with nothing created, until every ConfirmRollout hook answered 2xx."""
    started = ctx.previous.canary_revision is not None or ctx.previous.phase not in (Phase.PENDING, Phase.FAILED)
    if started or (ctx.canary is not None and not ctx.spec.canary.provided):
        return None
    hold = _hold(ctx, gate="confirm-rollout", kinds=(HookType.CONFIRM_ROLLOUT,), approval=False,
                 what="creating the canary")
    if hold is None:
        return None
    return Decision(
        phase=Phase.PENDING, reason=hold.reason, message=hold.message, calls=hold.calls, gate=hold.gate,
        events=hold_events(ctx, hold, message=hold.message), requeue_after=hold.retry_in,
        stable_deployment=(ctx.stable or {}).get("metadata", {}).get("name"),
    )


def hold_events(ctx: Context, hold: Hold, *, message: str) -> tuple[act.Event, ...]:
    """An Event when the release starts to hold at a gate, or waits there for something else."""
    before = ctx.previous.gate
    if before is not None and before.gate == hold.gate.gate and before.waiting_for == hold.gate.waiting_for:
        return ()
    return (act.Event(type="Normal", reason=hold.reason.value, message=message),)


def pre_rollout(ctx: Context) -> Hold | None:
    """No traffic to a canary revision that never had any until every PreRollout hook answered 2xx."""
    if ctx.previous.canary_revision == revision(ctx):
        return None
    return _hold(ctx, gate="pre-rollout", kinds=(HookType.PRE_ROLLOUT,), approval=False,
                 what="the canary's first traffic", once=True)


def step_gate(ctx: Context, *, gate: str) -> Hold | None:
    """The hold before the analysis raises the weight (``weight-N``) or promotes (``promotion``)."""
    analysis = ctx.spec.analysis
    needs_approval = analysis is not None and any(a.gate == gate for a in analysis.approvals)
    kind = HookType.CONFIRM_PROMOTION if gate == "promotion" else HookType.CONFIRM_TRAFFIC_INCREASE
    what = "promoting the canary" if gate == "promotion" else f"raising the canary to {gate.removeprefix('weight-')}%"
    return _hold(ctx, gate=gate, kinds=(kind,), approval=needs_approval, what=what)


def rollback_cause(ctx: Context) -> str:
    """Why hooks roll the release back ("" if they do not): a PreRollout failed, a Rollback said 2xx."""
    answers, rev = state(ctx), revision(ctx)
    for hook in plan.hooks_of(ctx.spec, HookType.PRE_ROLLOUT):
        if plan.answered(answers, plan.key(hook.name, "pre-rollout", rev)) is False:
            return f"PreRollout webhook {hook.name} {_last_result(answers, hook.name)}"
    for hook in plan.hooks_of(ctx.spec, HookType.ROLLBACK):
        if plan.answered(answers, plan.key(hook.name, "rollback", rev)) is True:
            return f"Rollback webhook {hook.name} answered 2xx"
    return ""


def _last_result(answers: WebhooksStatus | None, name: str) -> str:
    for call in reversed(answers.calls if answers is not None else ()):
        if call.name == name:
            return call.result or "failed"
    return "failed"


def _hold(
    ctx: Context, *, gate: str, kinds: tuple[HookType, ...], approval: bool, what: str, once: bool = False
) -> Hold | None:
    rev, answers = revision(ctx), state(ctx)
    hooks = [h for kind in kinds for h in plan.hooks_of(ctx.spec, kind)]
    waiting = [h for h in hooks if plan.answered(answers, plan.key(h.name, gate, rev)) is not True]
    if once:  # asked once: a failure is no reason to wait, rollback_cause acts on it
        waiting = [h for h in waiting if plan.answered(answers, plan.key(h.name, gate, rev)) is None]
    approved = not approval or _approved(ctx, gate=gate, rev=rev)
    if not waiting and approved:
        return None
    calls, retry_in = _due(ctx, waiting, gate=gate, rev=rev)
    previous = ctx.previous.gate
    since = previous.since if previous is not None and previous.gate == gate else ctx.now.isoformat()
    wanted = _approve(gate, rev) if not approved else None
    kinds_waiting = [*([GateKind.WEBHOOK] if waiting else []), *([GateKind.APPROVAL] if wanted else [])]
    parts = [f"webhook(s) {', '.join(h.name for h in waiting)} to answer 2xx"] if waiting else []
    if wanted is not None:
        parts.append(f"an approval (kubectl canary approve {ctx.release.name}) of canary revision {rev}")
    return Hold(
        gate=GateStatus(gate=gate, waiting_for=kinds_waiting, webhooks=[h.name for h in waiting],
                        approve=wanted, since=since),
        calls=calls,
        reason=Reason.WAITING_FOR_WEBHOOK if waiting else Reason.WAITING_FOR_APPROVAL,
        message=f"holding before {what}: waiting for {' and '.join(parts)}",
        retry_in=retry_in,
    )


def _approve(gate: str, rev: str) -> Approve:
    if gate == "promotion":
        return Approve(before_promotion=True, canary_revision=rev)
    return Approve(before_weight=int(gate.removeprefix("weight-")), canary_revision=rev)


def _approved(ctx: Context, *, gate: str, rev: str) -> bool:
    """Only an approval of this gate, for the canary revision that runs now, counts."""
    given = ctx.spec.approve
    return given is not None and given.gate == gate and given.canary_revision == rev


def _due(
    ctx: Context, hooks: list[Webhook], *, gate: str, rev: str
) -> tuple[tuple[act.CallWebhook, ...], float]:
    """The calls due now among ``hooks``, and the seconds until the next one is due."""
    every = plan.spec_interval(ctx.spec)
    calls, soonest = [], every
    for hook in hooks:
        wait = plan.next_due_in(state(ctx), name=hook.name, gate=gate, now=ctx.now, every=every)
        if wait > 0:
            soonest = min(soonest, wait)
            continue
        calls.append(_call(ctx, hook, gate=gate, entry=plan.key(hook.name, gate, rev), phase=ctx.previous.phase))
    return tuple(calls), (ANSWER_SECONDS if calls else max(soonest, ANSWER_SECONDS))


def _call(ctx: Context, hook: Webhook, *, gate: str, entry: str, phase: Phase) -> act.CallWebhook:
    return plan.build_call(
        hook, gate=gate, entry=entry, namespace=ctx.release.namespace, name=ctx.release.name, spec=ctx.spec,
        phase=phase, traffic=ctx.previous.traffic, revision=revision(ctx),
    )


def finish(ctx: Context, decision: Decision) -> Decision:
    """Any decision with the Event, PostRollout and Rollback calls it brings, and the webhooks' state."""
    spec = ctx.spec
    if ctx.release.deleting or not (spec.webhooks or (spec.analysis and spec.analysis.approvals)):
        return decision
    calls = list(decision.calls)
    if decision.phase is not ctx.previous.phase:
        events = plan.hooks_of(spec, HookType.EVENT)
        calls += [_call(ctx, h, gate="event", entry="", phase=decision.phase) for h in events]
    requeue = decision.requeue_after
    if decision.phase.is_final:
        calls += _post_rollout(ctx, decision.phase)
    elif decision.phase in (Phase.WAITING_FOR_CANARY, Phase.PROGRESSING) and decision.abort_reason is None:
        polled, wait = _due(ctx, plan.hooks_of(spec, HookType.ROLLBACK), gate="rollback", rev=revision(ctx))
        calls += polled
        if plan.hooks_of(spec, HookType.ROLLBACK):
            requeue = wait if requeue is None else min(requeue, wait)
    if any(c.gate in _ACTED_ON or c.gate.startswith("weight-") for c in calls):
        requeue = ANSWER_SECONDS if requeue is None else min(requeue, ANSWER_SECONDS)
    answers = state(ctx, staying_aborted=decision.phase is Phase.ABORTED)
    return replace(decision, calls=tuple(calls), webhooks=answers, requeue_after=requeue)


def _post_rollout(ctx: Context, phase: Phase) -> list[act.CallWebhook]:
    """Once per end (Completed or Aborted) of a canary revision, whatever the hook answers."""
    rev, answers = f"{phase.value}-{revision(ctx)}", state(ctx, staying_aborted=phase is Phase.ABORTED)
    due = []
    for hook in plan.hooks_of(ctx.spec, HookType.POST_ROLLOUT):
        entry = plan.key(hook.name, "post-rollout", rev)
        recent = plan.next_due_in(answers, name=hook.name, gate="post-rollout", now=ctx.now, every=60.0) > 0
        if plan.answered(answers, entry) is None and not recent:
            due.append(_call(ctx, hook, gate="post-rollout", entry=entry, phase=phase))
    return due

