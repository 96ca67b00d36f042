"""``decide``: which part of the state machine a release is in, and the decision it makes there."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from istio_canary import actions as act
from istio_canary import errors
from istio_canary.analysis import progression
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus, Phase, Reason
from istio_canary.models.analysis import CheckResult
from istio_canary.phases import cleanup, failures, gates, offline, progress, resolve, teardown
from istio_canary.phases.model import DEFAULT_DRAIN_SECONDS, Context, Decision, Observed, ReleaseRef

__all__ = ["decide"]


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
    ctx = Context(release=release, spec=spec, observed=observed, previous=previous, now=now, drain_seconds=drain)
    if previous.phase is Phase.COMPLETED and _may_have_completed(spec):
        return gates.finish(ctx, _completed(ctx))
    if release.deleting:
        return teardown.tear_down(ctx, reason=Reason.DELETING)
    try:
        return _undo_or_forward(ctx, check=check)
    except errors.InvalidSpecError as err:
        return gates.finish(ctx, failures.refused(previous=previous, error=err))


def _undo_or_forward(ctx: Context, *, check: CheckResult | None) -> Decision:
    """Aborted stays aborted, spec.abort rolls back, anything else moves forward (with its webhook calls)."""
    spec, previous, release = ctx.spec, ctx.previous, ctx.release
    by_analysis = spec.analysis is not None or previous.abort_reason is not None
    rolled_back = by_analysis and previous.observed_generation in (None, release.generation)
    if previous.phase is Phase.ABORTED and (spec.abort or rolled_back):
        # Aborted stays aborted until the user changes the spec (for example sets abort back to false).
        # Only an analysis aborts without spec.abort (and records why): otherwise a stored Aborted
        # is someone's status write, not a rollback to carry on with.
        return gates.finish(ctx, teardown.tear_down(ctx, reason=previous.abort_reason or Reason.ABORTED))
    if spec.abort:
        return gates.finish(ctx, teardown.tear_down(ctx, reason=Reason.ABORTED))
    resolved, decision = _forward(ctx, check=check)
    return gates.finish(resolved, decision)


def _may_have_completed(spec: CanaryReleaseSpec) -> bool:
    """Whether this spec can have led to Completed: only job offline completes a release.

    Anyone who may patch canaryreleases/status can write ``phase: Completed``; on a release that
    asks for no offline (and runs no analysis that could promote to one), that phase was not the
    operator's and is not trusted, or a live split would be handed over (found by fuzzing).
    """
    return spec.offline or spec.analysis is not None


def _completed(ctx: Context) -> Decision:
    """Deleted or not, a completed release only hands over what outlives it (and removes nothing).

    Only once Completed is in status: a hand-over lost to a restart before that would leave a
    TakenOver release looking at a canary that no longer carries its marks.
    """
    hand_over = cleanup.hand_over(ctx)
    return Decision(
        phase=Phase.COMPLETED,
        reason=Reason.COMPLETED,
        message=ctx.previous.message,
        actions=hand_over,
        done=True,
        requeue_after=0.0 if hand_over else None,
    )


def _forward(ctx: Context, *, check: CheckResult | None) -> tuple[Context, Decision]:
    """Towards what the spec asks: the split, take over, or job offline (with the context it resolved)."""
    spec = ctx.spec
    # Job offline: asked in the spec, or the promotion of a canary that passed its analysis.
    survivor = spec.take_over if spec.offline else progression.offline_survivor(spec=spec, status=ctx.previous.analysis)
    # After job offline to the canary, the stable Deployment is gone on purpose (and a provided
    # canary after job offline to stable).
    ctx = resolve.resolve_workloads(
        ctx, stable_may_be_gone=survivor == spec.canary.version, canary_may_be_gone=survivor == spec.stable.version
    )
    cause = gates.rollback_cause(ctx)
    if cause:
        return ctx, _hook_rollback(ctx, cause)
    held = gates.confirm_rollout(ctx)
    if held is not None:
        return ctx, held
    if survivor and resolve.survivor_ready(ctx, survivor):
        return ctx, offline.go_offline(ctx, survivor=survivor)
    # Not ready to go offline yet (e.g. offline asked at creation): bring the survivor up first.
    return ctx, progress.progress(ctx, check=check)


def _hook_rollback(ctx: Context, cause: str) -> Decision:
    """A webhook rolls the canary back (said once, by the decision that starts it)."""
    down = teardown.tear_down(ctx, reason=Reason.WEBHOOK_ROLLBACK, cause=cause)
    events = down.events
    if ctx.previous.abort_reason is None:
        events = (act.Event(type="Warning", reason=Reason.WEBHOOK_ROLLBACK.value, message=f"rolling back: {cause}"),
                  *events)
    return replace(down, events=events, rolled_back=down.phase is Phase.ABORTED)
