"""Releases to a canary someone else deployed: the release routes to it and never changes it."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from istio_canary import actions as act
from istio_canary import status as status_
from istio_canary.istio import ownership
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus, Phase
from istio_canary.phases import Decision, Observed

from tests.unit.builders import NOW, SERVICE, adopted, deployment, run, spec, user_object

# Istio's destination-rule-all.yaml for reviews, and a VirtualService with a route to v2 for one user.
ALL_SUBSETS: dict[str, Any] = {
    "host": "reviews",
    "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")],
}
JASON_TO_V2: dict[str, Any] = {
    "hosts": ["reviews"],
    "http": [
        {
            "match": [{"headers": {"end-user": {"exact": "jason"}}}],
            "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
        },
        {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
    ],
}


def provided(**fields: Any) -> CanaryReleaseSpec:
    """reviews v1 -> v3 over a v3 that is already deployed (no image in the spec)."""
    return spec(canary={"version": "v3"}, **fields)


def three_versions(**extra: Any) -> Observed:
    return Observed(
        service=SERVICE,
        deployments=(deployment("v1"), deployment("v2"), deployment("v3")),
        virtual_service=user_object("VirtualService", JASON_TO_V2),
        destination_rule=user_object("DestinationRule", ALL_SUBSETS),
        **extra,
    )


def written(decision: Decision, kind: str) -> dict[str, Any]:
    return next(a.body for a in decision.actions if isinstance(a, act.ApplyRouting) and a.kind == kind)


def deployment_writes(decision: Decision) -> list[act.Action]:
    return [
        a for a in decision.actions
        if isinstance(a, (act.ApplyDeployment, act.ScaleDeployment, act.ApplyCompanion))
        or (isinstance(a, (act.DeleteObject, act.PatchObject)) and a.kind == "Deployment")
    ]


def test_without_an_image_the_release_routes_to_the_deployed_version_and_writes_no_deployment() -> None:
    decision = run(provided(), three_versions(), CanaryReleaseStatus(phase=Phase.PENDING))
    assert decision.phase is Phase.PROGRESSING
    assert deployment_writes(decision) == []
    assert decision.plan is not None and (decision.plan.stable_weight, decision.plan.canary_weight) == (70, 30)
    assert decision.canary_deployment == "reviews-v3"


def test_the_other_versions_subset_and_the_users_route_to_it_are_kept() -> None:
    decision = run(provided(), three_versions(), CanaryReleaseStatus(phase=Phase.PENDING))
    subsets = written(decision, "DestinationRule")["spec"]["subsets"]
    assert [s["name"] for s in subsets] == ["v1", "v2", "v3"]
    http = written(decision, "VirtualService")["spec"]["http"]
    assert http[0] == JASON_TO_V2["http"][0]  # jason still gets v2, ahead of the split
    assert [(d["destination"]["subset"], d["weight"]) for d in http[1]["route"]] == [("v1", 70), ("v3", 30)]


def test_a_catch_all_route_to_a_third_version_is_refused_and_nothing_is_written() -> None:
    half_v2 = {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 50},
        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 50},
    ]}]}
    observed = Observed(
        service=SERVICE,
        deployments=three_versions().deployments,
        virtual_service=user_object("VirtualService", half_v2),
    )
    decision = run(provided(), observed, CanaryReleaseStatus(phase=Phase.PENDING))
    assert decision.phase is Phase.FAILED and decision.actions == ()
    assert "subset(s) v2, neither stable v1 nor canary v3" in decision.message


def test_a_named_deployment_is_used_whatever_its_name() -> None:
    observed = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v3", name="reviews-next")))
    the_spec = spec(canary={"version": "v3", "deployment": "reviews-next"})
    decision = run(the_spec, observed, CanaryReleaseStatus(phase=Phase.PENDING))
    assert decision.phase is Phase.PROGRESSING and decision.canary_deployment == "reviews-next"
    assert deployment_writes(decision) == []


@pytest.mark.parametrize(
    ("canary", "deployments", "words"),
    [
        ({"version": "v3"}, (deployment("v1"),), "no Deployment has pods labelled {app=reviews, version=v3}"),
        ({"version": "v3"}, (deployment("v1"), deployment("v3"), deployment("v3", name="reviews-v3b")),
         "2 Deployments have pods labelled {app=reviews, version=v3}: reviews-v3, reviews-v3b"),
        ({"version": "v3", "deployment": "reviews-x"}, (deployment("v1"),), "canary.deployment 'reviews-x' not found"),
        ({"version": "v3", "deployment": "reviews-x"}, (deployment("v1"), deployment("v4", name="reviews-x")),
         "the pods of Deployment 'reviews-x' are not labelled {app=reviews, version=v3}"),
    ],
    ids=["none", "several", "named-missing", "named-mislabelled"],
)
def test_zero_or_several_or_a_wrong_deployment_is_a_clear_failure_that_writes_nothing(
    canary: dict[str, Any], deployments: tuple[dict[str, Any], ...], words: str
) -> None:
    decision = run(spec(canary=canary), Observed(service=SERVICE, deployments=deployments), CanaryReleaseStatus())
    assert decision.phase is Phase.FAILED and decision.invalid
    assert decision.actions == ()
    assert words in decision.message


def test_a_deployment_another_live_release_created_is_refused() -> None:
    theirs = deployment("v3", ours=True)
    theirs["metadata"]["annotations"]["releases.istio-canary.io/release"] = "bookinfo/other"
    decision = run(provided(), Observed(service=SERVICE, deployments=(deployment("v1"), theirs)), CanaryReleaseStatus())
    assert decision.phase is Phase.FAILED and decision.actions == ()
    assert "canary of release bookinfo/other" in decision.message


def test_abort_restores_the_routing_and_leaves_the_provided_deployment_where_it_was() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=three_versions().deployments,
        virtual_service=adopted("VirtualService", JASON_TO_V2),
        destination_rule=adopted("DestinationRule", ALL_SUBSETS),
    )
    decision = run(provided(abort=True), observed, CanaryReleaseStatus(phase=Phase.PROGRESSING))
    assert deployment_writes(decision) == []
    restored = {a.kind: a.body["spec"] for a in decision.actions if isinstance(a, act.ReplaceRouting)}
    assert restored == {"VirtualService": JASON_TO_V2, "DestinationRule": ALL_SUBSETS}
    assert decision.phase is Phase.ABORTED and "reviews-v3 left as it is" in decision.message


def test_deleting_the_release_leaves_the_provided_deployment() -> None:
    observed = Observed(
        service=SERVICE,
        deployments=three_versions().deployments,
        virtual_service=adopted("VirtualService", JASON_TO_V2),
    )
    decision = run(provided(), observed, CanaryReleaseStatus(phase=Phase.PROGRESSING), deleting=True)
    assert decision.done and deployment_writes(decision) == []


@pytest.mark.parametrize(("action", "expected"), [
    ("Delete", act.DeleteObject(kind="Deployment", name="reviews-v1")),
    ("ScaleToZero", act.ScaleDeployment(name="reviews-v1", replicas=0)),
])
def test_offline_to_the_provided_canary_acts_on_stable_and_never_on_the_canary(
    action: str, expected: act.Action
) -> None:
    the_spec = provided(takeOver="v3", offline=True, offlineAction=action, drainSeconds=0)
    decision = run(the_spec, three_versions(), CanaryReleaseStatus(phase=Phase.TAKEN_OVER))
    assert deployment_writes(decision) == [expected]
    # The DestinationRule keeps v2 and the survivor; only the leaving version's subset goes.
    assert [s["name"] for s in written(decision, "DestinationRule")["spec"]["subsets"]] == ["v2", "v3"]


def test_offline_back_to_stable_applies_the_offline_action_to_the_provided_canary() -> None:
    the_spec = provided(takeOver="v1", offline=True, offlineAction="ScaleToZero", drainSeconds=0)
    decision = run(the_spec, three_versions(), CanaryReleaseStatus(phase=Phase.TAKEN_OVER))
    assert deployment_writes(decision) == [act.ScaleDeployment(name="reviews-v3", replicas=0)]
    gone = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2")))
    completed = run(provided(takeOver="v1", offline=True), gone, CanaryReleaseStatus(phase=Phase.TAKEN_OVER))
    assert completed.phase is Phase.COMPLETED


def test_a_new_image_in_the_provided_deployment_waits_for_its_rollout_before_traffic() -> None:
    first = run(provided(), three_versions(), CanaryReleaseStatus(phase=Phase.PENDING))
    assert first.canary_revision is not None
    rolling = deployment("v3", image="reviews:v3.1")
    rolling["metadata"]["generation"] = 2  # the Deployment controller has not caught up yet
    observed = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2"), rolling))
    previous = CanaryReleaseStatus(phase=Phase.PROGRESSING, canary_revision=first.canary_revision)
    decision = run(provided(), observed, previous)
    assert decision.plan is not None and decision.plan.canary_weight == 0
    assert deployment_writes(decision) == []


def test_status_says_which_deployment_the_release_manages_and_which_it_only_routes_to() -> None:
    decision = run(provided(), three_versions(), CanaryReleaseStatus(phase=Phase.PENDING))
    status = status_.build_status(
        spec=provided(), previous=CanaryReleaseStatus(), decision=decision,
        deployments=list(three_versions().deployments), virtual_service=written(decision, "VirtualService"),
        metrics=None, generation=1, now=NOW,
    )
    assert [(v.deployment, v.managed) for v in status.versions] == [("reviews-v1", False), ("reviews-v3", False)]
    by_image = run(spec(), Observed(service=SERVICE, deployments=(deployment("v1"),)), CanaryReleaseStatus())
    created = status_.build_status(
        spec=spec(), previous=CanaryReleaseStatus(), decision=by_image, deployments=[deployment("v1")],
        virtual_service=None, metrics=None, generation=1, now=NOW,
    )
    assert [(v.deployment, v.managed) for v in created.versions] == [("reviews-v1", False), ("reviews-v2", True)]


@pytest.mark.parametrize(("canary", "words"), [
    ({"version": "v3", "deployment": "reviews-v3", "image": "x"}, "leave image and images out"),
    ({"version": "v3", "replicas": 2}, "a Deployment you provide keeps its own replicas"),
])
def test_the_spec_refuses_mixing_a_provided_canary_with_what_only_a_created_one_has(
    canary: dict[str, Any], words: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=words):
        spec(canary=canary)


def test_the_recorded_original_of_istios_objects_is_their_spec_exactly() -> None:
    decision = run(provided(), three_versions(), CanaryReleaseStatus(phase=Phase.PENDING))
    for kind, original in (("VirtualService", JASON_TO_V2), ("DestinationRule", ALL_SUBSETS)):
        assert ownership.recorded_original(written(decision, kind)) == original
