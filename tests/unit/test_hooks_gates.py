"""Webhook gates and approvals in the state machine, decided on plain dicts (no HTTP, no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from istio_canary import actions as act
from istio_canary.hooks import plan
from istio_canary.models import (
    AnalysisStatus,
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    Phase,
    Reason,
    TrafficStatus,
    Verdict,
)
from istio_canary.models.analysis import CheckResult
from istio_canary.models.hooks import HookType, WebhookCall, WebhooksStatus
from istio_canary.phases import Decision, Observed, ReleaseRef, decide
from istio_canary.workloads import canary_revision

from tests.unit.test_phases_analysis import SERVICE, deployment

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RELEASE = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=1)
STABLE_ONLY = Observed(service=SERVICE, deployments=(deployment("v1"),))
BOTH_READY = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ours=True)))
URL = "http://hooks.test:8080/gate?token=s3cr3t"


def spec(*hooks: tuple[str, str], approvals: list[dict[str, Any]] | None = None, **extra: Any) -> CanaryReleaseSpec:
    body: dict[str, Any] = {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "reviews:v2"},
        "traffic": {"weight": 30},
        "webhooks": [{"name": name, "type": kind, "url": URL, "timeoutSeconds": 2} for name, kind in hooks],
        **extra,
    }
    if approvals is not None:
        body["analysis"] = {"steps": [20, 50], "intervalSeconds": 5, "approvals": approvals}
    return CanaryReleaseSpec.model_validate(body)


REVISION = canary_revision(spec())


def answered(*entries: tuple[str, bool], calls: list[WebhookCall] | None = None) -> WebhooksStatus:
    return WebhooksStatus(
        calls=calls or [],
        passed=[e for e, ok in entries if ok],
        failed=[e for e, ok in entries if not ok],
    )


def call(name: str, gate: str, *, ok: bool, kind: HookType, ago: float = 1.0, code: int = 200) -> WebhookCall:
    when = (NOW - timedelta(seconds=ago)).isoformat()
    return WebhookCall(name=name, type=kind, time=when, ok=ok, code=code, result=f"answered HTTP {code}", gate=gate)


def run(s: CanaryReleaseSpec, previous: CanaryReleaseStatus, observed: Observed = BOTH_READY,
        check: CheckResult | None = None) -> Decision:
    return decide(release=RELEASE, spec=s, observed=observed, previous=previous, now=NOW, check=check)


def progressing(**fields: Any) -> CanaryReleaseStatus:
    return CanaryReleaseStatus(
        phase=Phase.PROGRESSING, observed_generation=1, canary_revision=REVISION,
        traffic=TrafficStatus(stable=80, canary=20), **fields,
    )


def test_confirm_rollout_holds_in_pending_without_creating_anything_and_calls_the_hook() -> None:
    decision = run(spec(("confirm", "ConfirmRollout")), CanaryReleaseStatus(), observed=STABLE_ONLY)
    assert decision.phase is Phase.PENDING and decision.reason is Reason.WAITING_FOR_WEBHOOK
    assert decision.actions == ()
    assert [(c.name, c.gate, c.entry) for c in decision.calls] == [
        ("confirm", "confirm-rollout", f"confirm/confirm-rollout@{REVISION}")
    ]
    assert decision.gate is not None and decision.gate.webhooks == ["confirm"]


def test_confirm_rollout_is_not_asked_again_before_the_interval() -> None:
    waiting = CanaryReleaseStatus(webhooks=answered(
        (f"confirm/confirm-rollout@{REVISION}", False),
        calls=[call("confirm", "confirm-rollout", ok=False, kind=HookType.CONFIRM_ROLLOUT, code=503)],
    ))
    decision = run(spec(("confirm", "ConfirmRollout")), waiting, observed=STABLE_ONLY)
    assert decision.phase is Phase.PENDING and decision.calls == ()
    assert decision.requeue_after is not None and 1.0 <= decision.requeue_after <= 9.0


def test_a_confirmed_rollout_creates_the_canary() -> None:
    confirmed = CanaryReleaseStatus(webhooks=answered((f"confirm/confirm-rollout@{REVISION}", True)))
    decision = run(spec(("confirm", "ConfirmRollout")), confirmed, observed=STABLE_ONLY)
    assert decision.gate is None
    assert any(isinstance(a, act.ApplyDeployment) for a in decision.actions)


def test_pre_rollout_keeps_a_ready_canary_at_zero_until_it_answers() -> None:
    before = CanaryReleaseStatus(phase=Phase.WAITING_FOR_CANARY, observed_generation=1)
    decision = run(spec(("pre", "PreRollout")), before)
    assert decision.plan is not None and decision.plan.canary_weight == 0
    assert [c.gate for c in decision.calls] == ["pre-rollout"]
    assert decision.canary_ready is True and decision.canary_revision is None
    passed = before.model_copy(update={"webhooks": answered((f"pre/pre-rollout@{REVISION}", True))})
    after = run(spec(("pre", "PreRollout")), passed)
    assert after.plan is not None and after.plan.canary_weight == 30 and after.gate is None


def test_a_failed_pre_rollout_rolls_the_release_back() -> None:
    failed = CanaryReleaseStatus(
        phase=Phase.WAITING_FOR_CANARY, observed_generation=1,
        webhooks=answered((f"pre/pre-rollout@{REVISION}", False), calls=[
            call("pre", "pre-rollout", ok=False, kind=HookType.PRE_ROLLOUT, code=500)
        ]),
    )
    decision = run(spec(("pre", "PreRollout")), failed)
    assert decision.abort_reason is Reason.WEBHOOK_ROLLBACK
    assert "PreRollout webhook pre answered HTTP 500" in decision.message
    assert decision.events[0].reason == "WebhookRollback"


def test_a_rollback_hook_is_polled_and_its_2xx_rolls_back() -> None:
    polled = run(spec(("stop", "Rollback")), progressing())
    assert [c.gate for c in polled.calls] == ["rollback"] and polled.abort_reason is None
    said_yes = progressing(webhooks=answered((f"stop/rollback@{REVISION}", True)))
    decision = run(spec(("stop", "Rollback")), said_yes)
    assert decision.abort_reason is Reason.WEBHOOK_ROLLBACK
    assert "Rollback webhook stop answered 2xx" in decision.message


def test_a_rollback_hook_answering_non_2xx_changes_nothing() -> None:
    said_no = progressing(webhooks=answered((f"stop/rollback@{REVISION}", False)))
    decision = run(spec(("stop", "Rollback")), said_no)
    assert decision.abort_reason is None and decision.phase is Phase.PROGRESSING


def test_event_hooks_are_called_at_a_phase_change_only() -> None:
    before = CanaryReleaseStatus(phase=Phase.WAITING_FOR_CANARY, observed_generation=1)
    changed = run(spec(("tell", "Event")), before)
    assert [(c.gate, c.payload["phase"]) for c in changed.calls] == [("event", "Progressing")]
    same = run(spec(("tell", "Event")), progressing())
    assert same.calls == ()


def test_post_rollout_is_called_once_when_the_release_is_aborted() -> None:
    aborting = spec(("after", "PostRollout"), abort=True)
    ended = run(aborting, progressing(), observed=STABLE_ONLY)
    assert ended.phase is Phase.ABORTED
    assert [c.gate for c in ended.calls] == ["post-rollout"]
    entry = ended.calls[0].entry
    done = CanaryReleaseStatus(phase=Phase.ABORTED, observed_generation=1, webhooks=answered((entry, False)))
    assert run(aborting, done, observed=STABLE_ONLY).calls == ()


def analysed(step: int = 0, weight: int = 20, **fields: Any) -> CanaryReleaseStatus:
    status = AnalysisStatus(step=step, weight=weight, step_started_at=(NOW - timedelta(seconds=30)).isoformat())
    return progressing(analysis=status, **fields)


def passing(step: int = 0, weight: int = 20) -> CheckResult:
    return CheckResult(time=NOW.isoformat(), step=step, weight=weight, verdict=Verdict.PASS, reason="fine")


def test_an_approval_before_a_weight_holds_the_step_until_approved_for_this_revision() -> None:
    gated = spec(approvals=[{"beforeWeight": 50}])
    held = run(gated, analysed(), check=passing())
    assert held.analysis is not None and (held.analysis.step, held.analysis.weight) == (0, 20)
    assert held.reason is Reason.WAITING_FOR_APPROVAL and held.gate is not None
    assert held.gate.approve is not None and held.gate.approve.canary_revision == REVISION
    assert held.plan is not None and held.plan.canary_weight == 20
    other = spec(approvals=[{"beforeWeight": 50}], approve={"beforeWeight": 50, "canaryRevision": "another"})
    assert run(other, analysed(), check=passing()).gate is not None
    wrong_step = spec(approvals=[{"beforeWeight": 50}], approve={"beforePromotion": True, "canaryRevision": REVISION})
    assert run(wrong_step, analysed(), check=passing()).gate is not None
    approved = spec(approvals=[{"beforeWeight": 50}], approve={"beforeWeight": 50, "canaryRevision": REVISION})
    moved = run(approved, analysed(), check=passing())
    assert moved.gate is None and moved.analysis is not None and moved.analysis.weight == 50


def test_a_gate_that_holds_stays_shown_between_looks() -> None:
    gated = spec(approvals=[{"beforeWeight": 50}])
    held = run(gated, analysed(), check=passing())
    between = run(gated, analysed(gate=held.gate))
    assert between.gate is not None and between.gate.gate == "weight-50"
    assert between.gate.since == held.gate.since if held.gate else False


def test_confirm_promotion_holds_the_last_step_until_the_hook_answers() -> None:
    hooked = spec(("promote", "ConfirmPromotion"), approvals=[])
    held = run(hooked, analysed(step=1, weight=50), check=passing(step=1, weight=50))
    assert held.phase is Phase.PROGRESSING and held.reason is Reason.WAITING_FOR_WEBHOOK
    assert [c.gate for c in held.calls] == ["promotion"]
    assert held.analysis is not None and held.analysis.step == 1
    yes = analysed(step=1, weight=50, webhooks=answered((f"promote/promotion@{REVISION}", True)))
    promoted = run(hooked, yes, check=passing(step=1, weight=50))
    assert promoted.phase is Phase.TAKEN_OVER


def test_confirm_traffic_increase_holds_each_weight_increase() -> None:
    hooked = spec(("more", "ConfirmTrafficIncrease"), approvals=[])
    held = run(hooked, analysed(), check=passing())
    assert [c.gate for c in held.calls] == ["weight-50"] and held.plan is not None and held.plan.canary_weight == 20


def test_the_payload_names_the_release_versions_weights_checksum_and_metadata() -> None:
    s = CanaryReleaseSpec.model_validate({
        "service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2", "image": "r:2"},
        "webhooks": [{"name": "load", "type": "Rollout", "url": URL, "metadata": {"cmd": "hey -z 1m"}}],
    })
    built = plan.build_call(
        s.webhooks[0], gate="rollout", entry="", namespace="ns", name="reviews", spec=s, phase=Phase.PROGRESSING,
        traffic=TrafficStatus(stable=70, canary=30), revision="abc",
    )
    assert built.payload == {
        "name": "reviews", "namespace": "ns", "phase": "Progressing", "type": "Rollout", "webhook": "load",
        "gate": "rollout", "checksum": plan.checksum(s), "canaryRevision": "abc",
        "stable": {"version": "v1", "weight": 70}, "canary": {"version": "v2", "weight": 30},
        "metadata": {"cmd": "hey -z 1m"},
    }
    assert "s3cr3t" not in repr(built)


def test_an_approval_does_not_change_the_checksum() -> None:
    approved = spec(approvals=[{"beforeWeight": 50}], approve={"beforeWeight": 50, "canaryRevision": "x"})
    assert plan.checksum(approved) == plan.checksum(spec(approvals=[{"beforeWeight": 50}]))


def test_recorded_answers_replace_earlier_ones_and_events_leave_no_entry() -> None:
    first = plan.record(None, [("a/g@r", call("a", "g", ok=False, kind=HookType.CONFIRM_ROLLOUT, code=500))])
    second = plan.record(first, [
        ("a/g@r", call("a", "g", ok=True, kind=HookType.CONFIRM_ROLLOUT)),
        ("", call("e", "event", ok=True, kind=HookType.EVENT)),
    ])
    assert second is not None and second.passed == ["a/g@r"] and second.failed == []
    assert [c.name for c in second.calls] == ["a", "a", "e"]
    many = plan.record(second, [("", call("e", "event", ok=True, kind=HookType.EVENT))] * 30)
    assert many is not None and len(many.calls) == plan.CALLS_KEPT


def test_a_rollback_hook_saying_no_is_no_warning_but_a_failed_gate_is() -> None:
    events = plan.call_events([
        ("", call("stop", "rollback", ok=False, kind=HookType.ROLLBACK, code=404)),
        ("", call("gate", "promotion", ok=False, kind=HookType.CONFIRM_PROMOTION, code=500)),
    ])
    assert [(e.type, e.reason) for e in events] == [("Warning", "WebhookFailed")]


def test_an_approval_of_an_earlier_image_approves_nothing_after_a_new_one() -> None:
    newer = {"version": "v2", "image": "reviews:v3"}
    approved_before = spec(approvals=[{"beforeWeight": 50}], canary=newer,
                           approve={"beforeWeight": 50, "canaryRevision": REVISION})
    new_revision = canary_revision(approved_before)
    assert new_revision != REVISION
    status = analysed().model_copy(update={"canary_revision": new_revision})
    held = run(approved_before, status, check=passing())
    assert held.gate is not None and held.gate.approve is not None
    assert held.gate.approve.canary_revision == new_revision


def test_an_approval_before_promotion_holds_the_last_step() -> None:
    gated = spec(approvals=[{"beforePromotion": True}])
    held = run(gated, analysed(step=1, weight=50), check=passing(step=1, weight=50))
    assert held.phase is Phase.PROGRESSING and held.gate is not None and held.gate.gate == "promotion"
    approval = {"beforePromotion": True, "canaryRevision": REVISION}
    approved = spec(approvals=[{"beforePromotion": True}], approve=approval)
    assert run(approved, analysed(step=1, weight=50), check=passing(step=1, weight=50)).phase is Phase.TAKEN_OVER


def test_a_release_being_deleted_calls_no_webhook() -> None:
    deleting = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=1, deleting=True)
    s = spec(("tell", "Event"), ("after", "PostRollout"), ("stop", "Rollback"))
    decision = decide(release=deleting, spec=s, observed=BOTH_READY, previous=progressing(), now=NOW)
    assert decision.calls == ()


def test_a_person_who_pauses_or_takes_over_is_not_held_by_a_gate() -> None:
    paused = spec(approvals=[{"beforeWeight": 50}], policy="Paused")
    assert run(paused, analysed(), check=passing()).gate is None
    taken = spec(approvals=[{"beforeWeight": 50}], takeOver="v2")
    assert run(taken, analysed(), check=passing()).phase is Phase.TAKEN_OVER
