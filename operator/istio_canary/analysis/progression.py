"""Automatic progression: what one verdict does to a release under analysis (pure).

``phases.decide`` asks this module three things: where the analysis stands (:func:`start`),
what the latest look at the metrics changes (:func:`advance`), and, once the canary has been
promoted with ``promotion: Offline``, which version survives (:func:`offline_survivor`).

Two decisions are sticky, because a rollback or a promotion takes several reconciles to carry
out and the canary's Deployment may be gone half-way: a ``Fail`` verdict (or Prometheus silent
for longer than ``unreachableTimeoutSeconds``, or answering ``NoData`` for longer than
``noDataTimeoutSeconds``) keeps answering "roll back", and a step count past the last step
keeps answering "promote". Neither depends on the next look at the metrics.

Every strategy runs the same steps. Canary: each step's number is the canary's weight. Mirror:
it is the percent of requests copied to the canary, whose answers nobody sees, so its metrics
are judged at no risk to users. BlueGreen: the canary gets only the test requests that
``traffic.match`` sends it until the analysis promotes it, and the steps are looks in a row
that must pass, each needing its share of the evidence.

Safety: only ``Pass`` moves a step forward, and carries the step's evidence into
``status.evidence`` for the release-wide tests. ``Inconclusive``, ``NoData``, ``BadData`` and
``Unreachable`` hold the weight, so no traffic, no data and a silent Prometheus can never
promote. ``NoData`` (and ``BadData``) and ``Unreachable`` hold only so long: a canary that
Prometheus cannot see (pods without the ``version`` label, no sidecar) is rolled back instead
of holding forever.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from istio_canary import actions as act
from istio_canary.analysis import evidence as evidence_
from istio_canary.models.analysis import (
    AnalysisSpec,
    AnalysisStatus,
    CheckResult,
    Promotion,
    Verdict,
)
from istio_canary.models.spec import CanaryReleaseSpec
from istio_canary.models.status import Phase

__all__ = ["Advance", "Outcome", "advance", "offline_survivor", "rollback_cause", "start"]

# Entries of status.analysis.history kept (the model allows 50).
HISTORY = 20


class Outcome(str, enum.Enum):
    HOLD = "hold"
    """Keep the current weight and look again."""
    ROLLBACK = "rollback"
    """Send everything back to stable and remove the canary."""
    PROMOTE = "promote"
    """The canary passed every step: it takes over."""


@dataclass(frozen=True, kw_only=True)
class Advance:
    status: AnalysisStatus
    outcome: Outcome
    events: tuple[act.Event, ...] = ()


def start(
    *,
    spec: CanaryReleaseSpec,
    previous: AnalysisStatus | None,
    previous_phase: Phase,
    canary_routable: bool,
    now: datetime,
) -> AnalysisStatus | None:
    """The analysis status to continue from; None when the release has no analysis.

    A release that was aborted and then changed by the user starts again from the first step.
    The first step's clock starts when the canary can first receive traffic, not when the
    release was created: time spent waiting for pods is no evidence.
    """
    if spec.analysis is None:
        return None
    status = previous
    if status is None or previous_phase in (Phase.ABORTED, Phase.FAILED):
        status = AnalysisStatus(step=0, weight=spec.analysis.weights()[0])
    if status.step_started_at is None and canary_routable:
        status = status.model_copy(update={"step_started_at": now.isoformat()})
    return status


def advance(*, spec: AnalysisSpec, status: AnalysisStatus, check: CheckResult | None, now: datetime) -> Advance:
    """Apply the latest look at the metrics (``check``, None when there is no new one)."""
    weights = spec.weights()
    if status.step >= len(weights):
        return Advance(status=status, outcome=Outcome.PROMOTE)
    if status.last_verdict is Verdict.FAIL or _no_data_too_long(spec, status):
        return Advance(status=status, outcome=Outcome.ROLLBACK)
    if check is None:
        outcome = Outcome.ROLLBACK if _silent_too_long(spec, status, now) else Outcome.HOLD
        return Advance(status=status, outcome=outcome)

    # The step's evidence stays in the look only until a pass carries it into status.evidence.
    history = [*status.history, check.model_copy(update={"evidence": None})][-HISTORY:]
    where = f"step {status.step + 1} of {len(weights)} ({status.weight}%)"
    verdict = check.verdict
    if verdict is Verdict.FAIL:
        failed = status.model_copy(update={"history": history, "last_verdict": verdict})
        message = f"analysis failed at {where}: {check.reason}; rolling back"
        return Advance(
            status=failed,
            outcome=Outcome.ROLLBACK,
            events=(act.Event(type="Warning", reason="AnalysisFailed", message=message),),
        )
    if verdict is Verdict.UNREACHABLE:
        return _unreachable(spec=spec, status=status, check=check, history=history, now=now)
    if verdict in (Verdict.NO_DATA, Verdict.BAD_DATA):
        return _no_data(spec=spec, status=status, check=check, history=history)

    looked = status.model_copy(
        update={"history": history, "last_verdict": verdict, "unreachable_since": None, "no_data_since": None}
    )
    if verdict is not Verdict.PASS:
        return Advance(status=looked, outcome=Outcome.HOLD)
    return _passed(spec=spec, status=looked, check=check, where=where, now=now)


def _passed(*, spec: AnalysisSpec, status: AnalysisStatus, check: CheckResult, where: str, now: datetime) -> Advance:
    """The step passed: its evidence joins the release's, and the next step (or promotion) starts."""
    weights = spec.weights()
    next_step = status.step + 1
    if check.evidence is not None:
        status = status.model_copy(update={"evidence": evidence_.combine(status.evidence, check.evidence)})
    if next_step >= len(weights):
        message = f"analysis passed {where}, the last one ({check.reason}); promoting {spec.promotion.value}"
        return Advance(
            status=status.model_copy(update={"step": next_step, "weight": 100, "step_started_at": now.isoformat()}),
            outcome=Outcome.PROMOTE,
            events=(act.Event(type="Normal", reason="AnalysisPassed", message=message),),
        )
    message = f"analysis passed {where} ({check.reason}); canary weight {weights[next_step]}%"
    return Advance(
        status=status.model_copy(
            update={"step": next_step, "weight": weights[next_step], "step_started_at": now.isoformat()}
        ),
        outcome=Outcome.HOLD,
        events=(act.Event(type="Normal", reason="AnalysisStep", message=message),),
    )


def rollback_cause(*, spec: AnalysisSpec, status: AnalysisStatus) -> str:
    """Why the analysis rolled the canary back, in words for ``status.message``."""
    last = status.history[-1] if status.history else None
    reason = last.reason if last is not None else ""
    if status.last_verdict is Verdict.UNREACHABLE:
        cause = f"Prometheus unreachable for {spec.unreachable_timeout_seconds} s (analysis.unreachableTimeoutSeconds)"
        return f"{cause}: {reason}" if reason else cause
    if status.last_verdict is Verdict.BAD_DATA:
        cause = f"no usable data in Prometheus for {spec.no_data_timeout()} s (analysis.noDataTimeoutSeconds)"
        return f"{cause}: {reason}" if reason else cause
    if status.last_verdict is Verdict.NO_DATA:
        cause = f"no data in Prometheus for {spec.no_data_timeout()} s (analysis.noDataTimeoutSeconds)"
        # Istio reports destination_version from the pod's ``version`` label, whatever
        # spec.versionLabel says, and only pods with a sidecar are counted at all.
        hint = (
            "check that the pods of both versions have an Istio sidecar and a `version` label "
            "(Istio's destination_version)"
        )
        return f"{cause}: {reason}; {hint}" if reason else f"{cause}; {hint}"
    where = f"step {status.step + 1} ({status.weight}%)"
    return f"analysis failed at {where}: {reason}" if reason else f"analysis failed at {where}"


def offline_survivor(*, spec: CanaryReleaseSpec, status: AnalysisStatus | None) -> str:
    """The canary's version once analysis promoted it with ``promotion: Offline``; else ""."""
    analysis = spec.analysis
    if analysis is None or status is None or spec.take_over or analysis.promotion is not Promotion.OFFLINE:
        return ""
    if status.step < len(analysis.weights()):
        return ""
    return spec.canary.version


def _unreachable(
    *, spec: AnalysisSpec, status: AnalysisStatus, check: CheckResult, history: list[CheckResult], now: datetime
) -> Advance:
    """Prometheus did not answer: hold, warn once, roll back after ``unreachableTimeoutSeconds``."""
    newly = status.unreachable_since is None
    since = now.isoformat() if newly else status.unreachable_since
    silent = status.model_copy(
        update={
            "history": history,
            "last_verdict": Verdict.UNREACHABLE,
            "unreachable_since": since,
            "no_data_since": None,
        }
    )
    if _silent_too_long(spec, silent, now):
        message = f"{rollback_cause(spec=spec, status=silent)}; rolling back"
        event = act.Event(type="Warning", reason="MetricsUnavailable", message=message)
        return Advance(status=silent, outcome=Outcome.ROLLBACK, events=(event,))
    events: tuple[act.Event, ...] = ()
    if newly:
        message = (
            f"{check.reason}; holding the canary at {status.weight}%, rolling back after "
            f"{spec.unreachable_timeout_seconds} s (analysis.unreachableTimeoutSeconds)"
        )
        events = (act.Event(type="Warning", reason="MetricsUnavailable", message=message),)
    return Advance(status=silent, outcome=Outcome.HOLD, events=events)


def _no_data(*, spec: AnalysisSpec, status: AnalysisStatus, check: CheckResult, history: list[CheckResult]) -> Advance:
    """Prometheus has no traffic for a version: hold, roll back once ``no_data_timeout()`` has passed.

    No Event while it holds: the first looks of a step often see no canary request yet.
    """
    since = status.no_data_since or check.time
    empty = status.model_copy(
        update={"history": history, "last_verdict": check.verdict, "no_data_since": since, "unreachable_since": None}
    )
    if not _no_data_too_long(spec, empty):
        return Advance(status=empty, outcome=Outcome.HOLD)
    message = f"{rollback_cause(spec=spec, status=empty)}; rolling back"
    event = act.Event(type="Warning", reason="NoData", message=message)
    return Advance(status=empty, outcome=Outcome.ROLLBACK, events=(event,))


def _no_data_too_long(spec: AnalysisSpec, status: AnalysisStatus) -> bool:
    """Have the looks said ``NoData`` for ``no_data_timeout()``, up to the last one?

    Judged at looks, not by the clock as silence is: NoData is what a look says. So the look
    that decides also carries the Warning Event, and a canary that merely cannot be routed to
    for a while (no looks) is not blamed for it.
    """
    if status.last_verdict not in (Verdict.NO_DATA, Verdict.BAD_DATA) or status.no_data_since is None:
        return False
    if not status.history:
        return False
    spell = datetime.fromisoformat(status.history[-1].time) - datetime.fromisoformat(status.no_data_since)
    return spell >= timedelta(seconds=spec.no_data_timeout())


def _silent_too_long(spec: AnalysisSpec, status: AnalysisStatus, now: datetime) -> bool:
    if status.last_verdict is not Verdict.UNREACHABLE or status.unreachable_since is None:
        return False
    since = datetime.fromisoformat(status.unreachable_since)
    return now - since >= timedelta(seconds=spec.unreachable_timeout_seconds)
