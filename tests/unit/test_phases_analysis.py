"""The analysis branch of the state machine: steps, verdicts, rollback and promotion, decided on plain dicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from istio_canary import actions as act
from istio_canary.models import (
    AnalysisStatus,
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    Condition,
    Phase,
    Policy,
    Verdict,
)
from istio_canary.models.analysis import CheckResult
from istio_canary.phases import Decision, Observed, ReleaseRef, decide

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RELEASE = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=1)
SERVICE = {
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]},
}


def deployment(version: str, *, ready: int = 1, ours: bool = False) -> dict[str, Any]:
    labels = {"app": "reviews", "version": version}
    meta: dict[str, Any] = {
        "name": f"reviews-{version}",
        "namespace": "bookinfo",
        "generation": 1,
        "labels": dict(labels),
    }
    if ours:
        meta["labels"]["app.kubernetes.io/managed-by"] = "istio-canary-operator"
        meta["annotations"] = {
            "releases.istio-canary.io/release": "bookinfo/reviews",
            "releases.istio-canary.io/release-uid": "u-1",
        }
    return {
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "reviews", "image": "r"}]}},
        },
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": ready, "availableReplicas": ready},
    }


BOTH_READY = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ours=True)))
CANARY_GONE = Observed(service=SERVICE, deployments=(deployment("v1"),))


def spec(**analysis: Any) -> CanaryReleaseSpec:
    return CanaryReleaseSpec.model_validate(
        {
            "service": "reviews",
            "stable": {"version": "v1"},
            "canary": {"version": "v2", "image": "reviews:v2"},
            "traffic": {"weight": 90},
            "analysis": {"steps": [20, 50], "unreachableTimeoutSeconds": 60, **analysis},
        }
    )


def under_analysis(
    step: int = 0, weight: int = 20, phase: Phase = Phase.PROGRESSING, **fields: Any
) -> CanaryReleaseStatus:
    status = AnalysisStatus(
        step=step, weight=weight, step_started_at=(NOW - timedelta(seconds=30)).isoformat(), **fields
    )
    return CanaryReleaseStatus(phase=phase, observed_generation=1, analysis=status)


def look(verdict: Verdict, *, step: int = 0, weight: int = 20, reason: str = "") -> CheckResult:
    return CheckResult(time=NOW.isoformat(), step=step, weight=weight, verdict=verdict, reason=reason or verdict.value)


def run(
    previous: CanaryReleaseStatus,
    *,
    check: CheckResult | None = None,
    observed: Observed = BOTH_READY,
    now: datetime = NOW,
    **spec_fields: Any,
) -> Decision:
    return decide(
        release=RELEASE, spec=spec(**spec_fields), observed=observed, previous=previous, now=now, check=check,
        drain_seconds=0,  # when a removal happens is tests/unit/test_phases_lifecycle.py's subject
    )


def canary_weight(decision: Decision) -> int | None:
    return decision.plan.canary_weight if decision.plan is not None else None


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


def test_the_first_step_weight_is_used_and_spec_traffic_weight_is_ignored() -> None:
    decision = run(CanaryReleaseStatus(phase=Phase.WAITING_FOR_CANARY))
    assert decision.phase is Phase.PROGRESSING
    assert canary_weight(decision) == 20
    assert decision.analysis is not None and decision.analysis.step == 0


def test_the_first_step_clock_starts_only_once_the_canary_can_get_traffic() -> None:
    waiting = run(CanaryReleaseStatus(), observed=Observed(service=SERVICE, deployments=(deployment("v1"),)))
    assert waiting.analysis is not None and waiting.analysis.step_started_at is None
    routable = run(CanaryReleaseStatus(phase=Phase.WAITING_FOR_CANARY, analysis=waiting.analysis))
    assert routable.analysis is not None and routable.analysis.step_started_at == NOW.isoformat()


def test_a_pass_moves_to_the_next_step_and_records_an_event() -> None:
    decision = run(under_analysis(), check=look(Verdict.PASS))
    assert decision.phase is Phase.PROGRESSING
    assert canary_weight(decision) == 50
    assert decision.analysis is not None
    assert (decision.analysis.step, decision.analysis.weight) == (1, 50)
    assert decision.analysis.step_started_at == NOW.isoformat()
    assert [c.verdict for c in decision.analysis.history] == [Verdict.PASS]
    assert reasons(decision) == ["AnalysisStep"]


def test_a_pass_at_the_last_step_takes_over_and_keeps_stable_running() -> None:
    decision = run(under_analysis(step=1, weight=50), check=look(Verdict.PASS, step=1, weight=50))
    assert decision.phase is Phase.TAKEN_OVER
    assert canary_weight(decision) == 100
    assert not any(isinstance(a, act.DeleteObject) for a in decision.actions)
    assert "AnalysisPassed" in reasons(decision)


def test_a_pass_at_the_last_step_with_promotion_offline_takes_stable_offline() -> None:
    decision = run(under_analysis(step=1, weight=50), check=look(Verdict.PASS, step=1, weight=50), promotion="Offline")
    assert canary_weight(decision) == 100
    assert act.DeleteObject(kind="Deployment", name="reviews-v1") in decision.actions
    assert "AnalysisPassed" in reasons(decision)
    assert decision.analysis is not None and decision.analysis.step == 2


def test_after_an_offline_promotion_the_missing_stable_completes_the_release_instead_of_failing_it() -> None:
    promoted = under_analysis(step=2, weight=100)
    decision = run(
        promoted, observed=Observed(service=SERVICE, deployments=(deployment("v2", ours=True),)), promotion="Offline"
    )
    assert decision.phase is Phase.COMPLETED


def test_a_fail_rolls_back_at_once_with_the_reason_in_the_message() -> None:
    decision = run(
        under_analysis(), check=look(Verdict.FAIL, reason="errors 20.00% canary vs 0.00% stable: canary worse")
    )
    assert canary_weight(decision) == 0
    assert act.DeleteObject(kind="Deployment", name="reviews-v2") in decision.actions
    assert "errors 20.00% canary vs 0.00% stable" in decision.message
    assert reasons(decision) == ["AnalysisFailed"]
    assert decision.analysis is not None and decision.analysis.last_verdict is Verdict.FAIL


def test_a_rollback_carries_on_without_a_new_look_and_never_recreates_the_canary() -> None:
    failed = run(under_analysis(), check=look(Verdict.FAIL, reason="canary worse"))
    assert failed.analysis is not None
    previous = CanaryReleaseStatus(phase=failed.phase, observed_generation=1, analysis=failed.analysis)
    decision = run(previous, observed=CANARY_GONE)
    assert decision.phase is Phase.ABORTED and decision.reason == "AnalysisFailed"
    assert not any(isinstance(a, act.ApplyDeployment) for a in decision.actions)
    assert decision.message.startswith("aborted (analysis failed at step 1 (20%): canary worse)")


def test_no_data_and_inconclusive_hold_the_weight_and_never_promote() -> None:
    previous = under_analysis(step=1, weight=50)
    for verdict in (Verdict.NO_DATA, Verdict.INCONCLUSIVE) * 10:
        decision = run(previous, check=look(verdict, step=1, weight=50))
        assert decision.phase is Phase.PROGRESSING
        assert canary_weight(decision) == 50
        assert decision.analysis is not None and decision.analysis.step == 1
        previous = CanaryReleaseStatus(phase=decision.phase, observed_generation=1, analysis=decision.analysis)
    assert decision.analysis is not None and len(decision.analysis.history) == 20


def test_an_unreachable_prometheus_holds_the_weight_then_rolls_back_after_the_timeout() -> None:
    first = run(under_analysis(), check=look(Verdict.UNREACHABLE, reason="Prometheus at http://p:9090 did not answer"))
    assert first.phase is Phase.PROGRESSING and canary_weight(first) == 20
    assert reasons(first) == ["MetricsUnavailable"]
    assert first.analysis is not None and first.analysis.unreachable_since == NOW.isoformat()

    previous = CanaryReleaseStatus(phase=Phase.PROGRESSING, observed_generation=1, analysis=first.analysis)
    still = run(previous, check=look(Verdict.UNREACHABLE), now=NOW + timedelta(seconds=59))
    assert still.phase is Phase.PROGRESSING and canary_weight(still) == 20 and reasons(still) == []

    later = run(previous, now=NOW + timedelta(seconds=60))  # no new look needed: time alone decides
    assert canary_weight(later) == 0
    assert act.DeleteObject(kind="Deployment", name="reviews-v2") in later.actions
    assert "Prometheus unreachable for 60 s" in later.message


def test_an_answer_after_silence_clears_the_unreachable_clock() -> None:
    silent = under_analysis(last_verdict=Verdict.UNREACHABLE, unreachable_since=NOW.isoformat())
    decision = run(silent, check=look(Verdict.INCONCLUSIVE), now=NOW + timedelta(seconds=120))
    assert decision.phase is Phase.PROGRESSING
    assert decision.analysis is not None and decision.analysis.unreachable_since is None


def test_a_look_while_the_canary_has_no_ready_pod_is_ignored() -> None:
    unready = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ready=0, ours=True)))
    decision = run(under_analysis(), check=look(Verdict.PASS), observed=unready)
    assert canary_weight(decision) == 0
    assert decision.analysis is not None and decision.analysis.step == 0 and decision.analysis.history == []


def test_a_person_can_promote_or_pause_at_any_time() -> None:
    promoted = decide(
        release=RELEASE,
        spec=spec().model_copy(update={"take_over": "v2"}),
        observed=BOTH_READY,
        previous=under_analysis(),
        now=NOW,
        check=look(Verdict.FAIL),
    )
    assert promoted.phase is Phase.TAKEN_OVER and canary_weight(promoted) == 100

    paused = decide(
        release=RELEASE,
        spec=spec().model_copy(update={"policy": Policy.PAUSED}),
        observed=BOTH_READY,
        previous=under_analysis(),
        now=NOW,
        check=look(Verdict.PASS),
    )
    assert paused.phase is Phase.PAUSED
    assert paused.analysis is not None and paused.analysis.step == 0


def test_a_canary_never_ready_fails_after_the_deadline_and_gets_no_traffic() -> None:
    unready = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ready=0, ours=True)))
    since = (NOW - timedelta(seconds=601)).isoformat()
    previous = CanaryReleaseStatus(
        phase=Phase.WAITING_FOR_CANARY,
        conditions=[Condition(type="CanaryReady", status="False", reason="NoReadyPods", last_transition_time=since)],
    )
    decision = run(previous, observed=unready)
    assert decision.phase is Phase.FAILED and decision.reason == "CanaryNeverReady"
    assert "readyDeadlineSeconds" in decision.message
    assert canary_weight(decision) == 0
    early = run(previous, observed=unready, now=NOW - timedelta(seconds=2))
    assert early.phase is Phase.WAITING_FOR_CANARY


def test_changing_the_spec_after_an_analysis_rollback_starts_again_from_the_first_step() -> None:
    rolled_back = CanaryReleaseStatus(
        phase=Phase.ABORTED,
        observed_generation=1,
        analysis=AnalysisStatus(step=1, weight=50, last_verdict=Verdict.FAIL),
    )
    changed = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=2)
    decision = decide(release=changed, spec=spec(), observed=BOTH_READY, previous=rolled_back, now=NOW)
    assert decision.analysis is not None
    assert (decision.analysis.step, decision.analysis.last_verdict) == (0, None)
    assert canary_weight(decision) == 20
