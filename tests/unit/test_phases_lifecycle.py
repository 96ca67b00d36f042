"""Release after release, decided on plain dicts: hand-over, drains, new images, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from istio_canary import actions as act
from istio_canary import errors
from istio_canary.istio import ownership
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus, DrainStatus, Phase, Reason
from istio_canary.phases import Decision, Observed, ReleaseRef, decide, failed
from istio_canary.workloads import canary_revision, hand_over_patch, rolled_out

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RELEASE = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=1)
SERVICE = {
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]},
}
OURS = {"releases.istio-canary.io/release": "reviews", "app.kubernetes.io/managed-by": "istio-canary-operator"}


def deployment(version: str, *, image: str = "", ready: int = 1, ours: bool = False, **status: Any) -> dict[str, Any]:
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
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "reviews", "image": image or f"reviews:{version}"}]},
            },
        },
        "status": {
            "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": ready,
            "availableReplicas": ready, **status,
        },
    }


def spec(**extra: Any) -> CanaryReleaseSpec:
    body: dict[str, Any] = {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "reviews:v2"},
        "traffic": {"weight": 30},
    }
    body.update(extra)
    return CanaryReleaseSpec.model_validate(body)


def routing(kind: str, *, labels: dict[str, str], original: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "reviews", "namespace": "bookinfo", "labels": dict(labels)}
    if original is not None:
        meta["annotations"] = {ownership.ORIGINAL_SPEC_ANNOTATION: json.dumps(original)}
    body = {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}
    if kind == "DestinationRule":
        body = {"host": "reviews", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}
    return {"kind": kind, "metadata": meta, "spec": body}


def run(
    the_spec: CanaryReleaseSpec,
    observed: Observed,
    previous: CanaryReleaseStatus,
    *,
    now: datetime = NOW,
    deleting: bool = False,
    drain_seconds: int = 10,
) -> Decision:
    release = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=1, deleting=deleting)
    return decide(
        release=release, spec=the_spec, observed=observed, previous=previous, now=now, drain_seconds=drain_seconds
    )


def kinds(decision: Decision) -> list[str]:
    return [type(a).__name__ + ":" + getattr(a, "kind", "") for a in decision.actions]


# -- hand-over at Completed ----------------------------------------------------------------


def test_the_release_that_completes_takes_its_marks_off_the_routing_and_the_surviving_canary() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v2", ours=True),),
        virtual_service=routing("VirtualService", labels=OURS),
        destination_rule=routing("DestinationRule", labels=OURS),
    )
    completing = run(spec(takeOver="v2", offline=True), observed, CanaryReleaseStatus(phase=Phase.TAKEN_OVER))
    assert completing.phase is Phase.COMPLETED and completing.requeue_after == 0
    # Not in the same breath: a restart before Completed is in status would find a canary
    # without its marks and take it for someone else's.
    assert not any(isinstance(a, act.PatchObject) for a in completing.actions)
    decision = run(spec(takeOver="v2", offline=True), observed, CanaryReleaseStatus(phase=Phase.COMPLETED))
    patches = {a.kind: a.patch for a in decision.actions if isinstance(a, act.PatchObject)}
    assert patches["VirtualService"] == {"metadata": {"labels": {
        "releases.istio-canary.io/release": None, "app.kubernetes.io/managed-by": None,
    }}}
    assert patches["DestinationRule"] == patches["VirtualService"]
    assert patches["Deployment"]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": None}
    assert set(patches["Deployment"]["metadata"]["annotations"]) == {
        "releases.istio-canary.io/release", "releases.istio-canary.io/release-uid",
    }


def test_a_completed_phase_written_by_a_user_on_a_live_split_hands_nothing_over() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v1"), deployment("v2", ours=True)),
        virtual_service=routing("VirtualService", labels=OURS),
        destination_rule=routing("DestinationRule", labels=OURS),
    )
    decision = run(spec(), observed, CanaryReleaseStatus(phase=Phase.COMPLETED))
    assert decision.phase is not Phase.COMPLETED
    patches = [a.patch for a in decision.actions if isinstance(a, act.PatchObject)]
    assert [p for p in patches if "labels" in p.get("metadata", {})] == []


def test_an_aborted_phase_written_by_a_user_on_a_live_split_removes_nothing() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v1"), deployment("v2", ours=True)),
        virtual_service=routing("VirtualService", labels=OURS),
        destination_rule=routing("DestinationRule", labels=OURS),
    )
    decision = run(spec(), observed, CanaryReleaseStatus(phase=Phase.ABORTED, observed_generation=1))
    assert decision.phase is not Phase.ABORTED
    assert not any(isinstance(a, act.DeleteObject) for a in decision.actions)


def test_an_adopted_object_loses_the_recorded_original_at_hand_over_so_no_later_abort_goes_back_before_it() -> None:
    adopted = routing(
        "VirtualService", labels={"releases.istio-canary.io/release": "reviews"}, original={"hosts": ["x"]}
    )
    patch = ownership.hand_over_patch(adopted, release_name="reviews")
    assert patch == {"metadata": {
        "labels": {"releases.istio-canary.io/release": None},
        "annotations": {ownership.ORIGINAL_SPEC_ANNOTATION: None},
    }}


def test_hand_over_leaves_objects_of_another_release_and_already_handed_over_ones_alone() -> None:
    other = routing("VirtualService", labels={"releases.istio-canary.io/release": "reviews-next"})
    plain = routing("VirtualService", labels={})
    assert ownership.hand_over_patch(other, release_name="reviews") is None
    assert ownership.hand_over_patch(plain, release_name="reviews") is None
    assert hand_over_patch(deployment=deployment("v2"), release_namespace="bookinfo", release_name="reviews") is None


def test_a_completed_release_hands_over_again_if_a_restart_lost_the_first_attempt_deleted_or_not() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v2", ours=True),),
        virtual_service=routing("VirtualService", labels=OURS),
    )
    completed = CanaryReleaseStatus(phase=Phase.COMPLETED, message="v2 serves 100% of traffic")
    for deleting in (False, True):
        decision = run(spec(takeOver="v2", offline=True), observed, completed, deleting=deleting)
        assert decision.phase is Phase.COMPLETED and decision.done
        assert kinds(decision) == ["PatchObject:VirtualService", "PatchObject:Deployment"]
        assert not any(isinstance(a, act.DeleteObject) for a in decision.actions)  # removes nothing
    clean = Observed(
        service=SERVICE, deployments=(deployment("v2"),), virtual_service=routing("VirtualService", labels={})
    )
    assert run(spec(takeOver="v2", offline=True), clean, completed).actions == ()


def test_the_next_release_clones_the_handed_over_survivor_as_its_stable_and_adopts_the_routing() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v2"),),
        virtual_service=routing("VirtualService", labels={}),
        destination_rule=routing("DestinationRule", labels={}),
    )
    nxt = spec(stable={"version": "v2"}, canary={"version": "v3", "image": "reviews:v3"})
    decision = run(nxt, observed, CanaryReleaseStatus())
    assert decision.phase is Phase.WAITING_FOR_CANARY
    vs = next(a.body for a in decision.actions if isinstance(a, act.ApplyRouting) and a.kind == "VirtualService")
    recorded = json.loads(vs["metadata"]["annotations"][ownership.ORIGINAL_SPEC_ANNOTATION])
    assert recorded == routing("VirtualService", labels={})["spec"]  # an abort goes back to v2 at 100%
    canary = next(a.body for a in decision.actions if isinstance(a, act.ApplyDeployment))
    assert canary["metadata"]["name"] == "reviews-v3"


def test_a_release_on_routing_another_live_release_owns_fails_with_a_clear_message_and_writes_nothing() -> None:
    # The reconcile turns the builder's error into this decision (errors.classify).
    classified = errors.classify(errors.ForeignObjectError("DestinationRule 'reviews' belongs to release 'a'"))
    decision = failed(previous=CanaryReleaseStatus(), classified=classified, retry_after=5)
    assert decision.phase is Phase.FAILED and decision.invalid
    assert "belongs to release 'a'" in decision.message and decision.actions == ()
    assert decision.requeue_after == 5
    assert [e.type for e in decision.events] == ["Warning"]


# -- drain ----------------------------------------------------------------------------------


def test_offline_moves_the_traffic_first_and_deletes_the_old_version_only_after_the_drain() -> None:
    observed = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ours=True)))
    the_spec = spec(takeOver="v2", offline=True)
    first = run(the_spec, observed, CanaryReleaseStatus(phase=Phase.TAKEN_OVER))
    assert not any(isinstance(a, act.DeleteObject) for a in first.actions)
    assert first.drain == DrainStatus(deployment="reviews-v1", until=(NOW + timedelta(seconds=10)).isoformat())
    assert first.requeue_after == 10
    # A restarted operator finds the deadline in status and waits out the same drain.
    draining = CanaryReleaseStatus(phase=Phase.TAKEN_OVER, drain=first.drain)
    halfway = run(the_spec, observed, draining, now=NOW + timedelta(seconds=4))
    assert not any(isinstance(a, act.DeleteObject) for a in halfway.actions) and halfway.requeue_after == 6
    done = run(the_spec, observed, draining, now=NOW + timedelta(seconds=10))
    assert act.DeleteObject(kind="Deployment", name="reviews-v1") in done.actions


def test_spec_drain_seconds_overrides_the_operator_default() -> None:
    observed = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ours=True)))
    decision = run(
        spec(takeOver="v2", offline=True, drainSeconds=0), observed, CanaryReleaseStatus(phase=Phase.TAKEN_OVER)
    )
    assert act.DeleteObject(kind="Deployment", name="reviews-v1") in decision.actions


def test_abort_pins_stable_at_once_and_removes_the_canary_after_the_drain() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v1"), deployment("v2", ours=True)),
        virtual_service=routing("VirtualService", labels=OURS),
    )
    first = run(spec(abort=True), observed, CanaryReleaseStatus(phase=Phase.PROGRESSING))
    assert "ApplyRouting:VirtualService" in kinds(first)
    assert not any(isinstance(a, act.DeleteObject) for a in first.actions)
    later = run(
        spec(abort=True), observed, CanaryReleaseStatus(phase=Phase.PROGRESSING, drain=first.drain),
        now=NOW + timedelta(seconds=11),
    )
    assert act.DeleteObject(kind="Deployment", name="reviews-v2") in later.actions


def test_a_canary_that_never_had_routes_is_removed_without_a_drain() -> None:
    observed = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ready=0, ours=True)))
    decision = run(spec(abort=True), observed, CanaryReleaseStatus(phase=Phase.WAITING_FOR_CANARY))
    assert decision.actions == (act.DeleteObject(kind="Deployment", name="reviews-v2"),)


# -- a new image on a live release ----------------------------------------------------------


def progressing(revision: str) -> CanaryReleaseStatus:
    return CanaryReleaseStatus(phase=Phase.PROGRESSING, canary_revision=revision)


def canary_weight(decision: Decision) -> int:
    assert decision.plan is not None
    return decision.plan.canary_weight


def test_a_new_canary_image_gets_no_traffic_until_every_pod_runs_it() -> None:
    old, new = spec(), spec(canary={"version": "v2", "image": "reviews:v2.1"})
    # The old image's pod is still ready: the patch is going out, no traffic meanwhile.
    observed = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ours=True)))
    decision = run(new, observed, progressing(canary_revision(old)))
    assert decision.phase is Phase.WAITING_FOR_CANARY and canary_weight(decision) == 0
    assert any(isinstance(a, act.ApplyDeployment) for a in decision.actions)
    assert "CanaryUpdated" in [e.reason for e in decision.events]
    # Rolling out: one new pod, the old one still there.
    rolling = deployment("v2", image="reviews:v2.1", ours=True, replicas=2, updatedReplicas=1, readyReplicas=2)
    assert not rolled_out(rolling)
    waiting = CanaryReleaseStatus(phase=Phase.WAITING_FOR_CANARY, canary_revision=canary_revision(old))
    mid = run(new, Observed(service=SERVICE, deployments=(deployment("v1"), rolling)), waiting)
    assert canary_weight(mid) == 0 and mid.events == ()
    # Rolled out: traffic again, and the new revision is recorded.
    done = deployment("v2", image="reviews:v2.1", ours=True)
    after = run(new, Observed(service=SERVICE, deployments=(deployment("v1"), done)), waiting)
    assert after.phase is Phase.PROGRESSING and canary_weight(after) == 30
    assert after.canary_revision == canary_revision(new) != canary_revision(old)


def test_the_canary_revision_changes_exactly_when_an_image_changes() -> None:
    assert canary_revision(spec()) == canary_revision(spec(traffic={"weight": 80}))
    assert canary_revision(spec()) != canary_revision(spec(canary={"version": "v2", "image": "reviews:v3"}))


# -- errors at the edge ---------------------------------------------------------------------


def test_errors_are_classified_in_one_place() -> None:
    cases = {
        errors.ConflictError("changed"): errors.Disposition.CONFLICT,
        errors.ForeignObjectError("belongs to release x"): errors.Disposition.INVALID,
        errors.ApiRefusedError("HTTP 403", code=403): errors.Disposition.INVALID,
        errors.RoutingError("bad regex"): errors.Disposition.INVALID,
        errors.ApiUnavailableError("HTTP 503"): errors.Disposition.RETRY,
        KeyError("spec"): errors.Disposition.RETRY,
    }
    for error, disposition in cases.items():
        assert errors.classify(error).disposition is disposition, error
    assert errors.classify(KeyError("spec")).reason == "UnexpectedError"
    assert len(errors.classify(errors.ApiRefusedError("x" * 100_000, code=422)).message) <= errors.MAX_MESSAGE


def test_a_transient_error_keeps_the_phase_says_it_retries_and_warns_once() -> None:
    classified = errors.classify(errors.ApiUnavailableError("the API server could not write VirtualService reviews"))
    previous = CanaryReleaseStatus(phase=Phase.PROGRESSING, drain=None)
    first = failed(previous=previous, classified=classified, retry_after=20)
    assert first.phase is Phase.PROGRESSING and not first.invalid
    assert "retrying in 20 s" in first.message and len(first.events) == 1
    again = failed(
        previous=previous.model_copy(update={"message": first.message}), classified=classified, retry_after=40
    )
    assert again.events == () and "retrying in 40 s" in again.message


# -- autoscaled services --------------------------------------------------------------------


def hpa(
    name: str, target: str, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "bookinfo", "labels": labels or {}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def pdb(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "bookinfo"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
    }


def test_the_canary_gets_copies_of_the_stable_hpa_and_of_a_pdb_that_selects_the_stable_version() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v1"),),
        autoscalers=(hpa("reviews-v1", "reviews-v1"), hpa("ratings", "ratings-v1")),
        disruption_budgets=(
            pdb("reviews-v1-pdb", {"app": "reviews", "version": "v1"}),
            pdb("reviews", {"app": "reviews"}),
        ),
    )
    decision = run(spec(), observed, CanaryReleaseStatus())
    copies = {a.kind: a.body for a in decision.actions if isinstance(a, act.ApplyCompanion)}
    assert set(copies) == {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
    canary_hpa = copies["HorizontalPodAutoscaler"]
    assert canary_hpa["metadata"]["name"] == "reviews-v2"
    assert canary_hpa["spec"]["scaleTargetRef"]["name"] == "reviews-v2"
    assert (canary_hpa["spec"]["minReplicas"], canary_hpa["spec"]["maxReplicas"]) == (2, 5)
    assert canary_hpa["spec"]["metrics"] == hpa("x", "y")["spec"]["metrics"]
    canary_pdb = copies["PodDisruptionBudget"]
    assert canary_pdb["metadata"]["name"] == "reviews-v1-pdb-v2"
    assert canary_pdb["spec"]["selector"]["matchLabels"] == {"app": "reviews", "version": "v2"}
    # The Deployment comes first, its companions after it.
    assert kinds(decision)[-3:] == [
        "ApplyDeployment:",
        "ApplyCompanion:HorizontalPodAutoscaler",
        "ApplyCompanion:PodDisruptionBudget",
    ]


def test_an_autoscaled_canary_is_scaled_by_its_hpa_not_reset_by_the_operator() -> None:
    scaled = deployment("v2", ours=True)
    scaled["spec"]["replicas"] = 4
    observed = Observed(
        service=SERVICE, deployments=(deployment("v1"), scaled), autoscalers=(hpa("reviews-v1", "reviews-v1"),)
    )
    decision = run(spec(), observed, CanaryReleaseStatus(phase=Phase.PROGRESSING))
    body = next(a.body for a in decision.actions if isinstance(a, act.ApplyDeployment))
    assert "replicas" not in body["spec"]


def test_a_user_object_with_the_copy_s_name_is_never_overwritten() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=(deployment("v1"),),
        autoscalers=(hpa("reviews-v1", "reviews-v1"), hpa("reviews-v2", "something-else")),
    )
    decision = run(spec(), observed, CanaryReleaseStatus())
    assert not any(isinstance(a, act.ApplyCompanion) for a in decision.actions)


def test_abort_removes_the_copies_and_offline_hands_them_over_with_the_canary() -> None:
    mark = {"releases.istio-canary.io/release": "bookinfo/reviews", "releases.istio-canary.io/release-uid": "u-1"}
    ours = hpa(
        "reviews-v2", "reviews-v2", labels={"app.kubernetes.io/managed-by": "istio-canary-operator"}, annotations=mark
    )
    users = hpa("reviews-v1", "reviews-v1")
    gone = Observed(service=SERVICE, deployments=(deployment("v1"),), autoscalers=(users, ours))
    aborted = run(spec(abort=True), gone, CanaryReleaseStatus(phase=Phase.PROGRESSING))
    assert act.DeleteObject(kind="HorizontalPodAutoscaler", name="reviews-v2") in aborted.actions
    assert not any(getattr(a, "name", "") == "reviews-v1" for a in aborted.actions)

    survived = Observed(service=SERVICE, deployments=(deployment("v2", ours=True),), autoscalers=(users, ours))
    completed = run(spec(takeOver="v2", offline=True), survived, CanaryReleaseStatus(phase=Phase.COMPLETED))
    handed = [a for a in completed.actions if isinstance(a, act.PatchObject) and a.kind == "HorizontalPodAutoscaler"]
    assert [a.name for a in handed] == ["reviews-v2"]


# -- undoing a release writes concrete objects ----------------------------------------------


def test_an_abort_puts_back_the_recorded_original_of_an_adopted_object_over_the_observed_one() -> None:
    users = {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}], "timeout": "3s"}]}
    adopted = routing("VirtualService", labels={"releases.istio-canary.io/release": "reviews"}, original=users)
    adopted["metadata"]["resourceVersion"] = "42"
    observed = Observed(service=SERVICE, deployments=(deployment("v1"),), virtual_service=adopted)
    decision = run(spec(abort=True), observed, CanaryReleaseStatus(phase=Phase.PROGRESSING))
    assert decision.phase is Phase.ABORTED and decision.abort_reason is not None
    (replace,) = decision.actions
    assert isinstance(replace, act.ReplaceRouting) and replace.kind == "VirtualService"
    assert replace.body["spec"] == users
    assert replace.body["metadata"]["resourceVersion"] == "42"  # conflict-checked against what was seen
    assert replace.body["metadata"]["labels"] == {} and replace.body["metadata"]["annotations"] == {}


def test_an_analysis_rollback_stays_an_analysis_rollback_once_aborted() -> None:
    observed = Observed(service=SERVICE, deployments=(deployment("v1"),))
    aborted = CanaryReleaseStatus(
        phase=Phase.ABORTED, observed_generation=1, message="aborted (analysis failed at step 1): ...",
        abort_reason=Reason.ANALYSIS_FAILED,
    )
    decision = run(spec(), observed, aborted)
    assert decision.reason == "AnalysisFailed" and decision.message == aborted.message and decision.events == ()
