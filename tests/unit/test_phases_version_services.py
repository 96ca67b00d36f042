"""routing.mode Services: each version's own Service, routes that name them, the released Service pinned."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from istio_canary import actions as act
from istio_canary import errors
from istio_canary import status as status_
from istio_canary.istio import version_services
from istio_canary.models import CanaryReleaseStatus, Phase
from istio_canary.models.marks import ORIGINAL_SELECTOR_ANNOTATION
from istio_canary.phases import Decision, Observed

from tests.unit.builders import NOW, OURS, SERVICE, adopted, deployment, run, spec

MODE = {"mode": "Services"}


def version_service(version: str, *, ours: bool = True) -> dict[str, Any]:
    labels = dict(OURS) if ours else {"app": "reviews"}
    return {
        "metadata": {"name": f"reviews-{version}", "namespace": "bookinfo", "resourceVersion": "3", "labels": labels},
        "spec": {
            "selector": {"app": "reviews", "version": version},
            "ports": [{"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080}],
            "clusterIP": "10.0.0.9",
        },
    }


def pinned(version: str) -> dict[str, Any]:
    service = copy.deepcopy(SERVICE)
    service["spec"]["selector"] = {"app": "reviews", "version": version}
    service["metadata"]["annotations"] = {ORIGINAL_SELECTOR_ANNOTATION: json.dumps({"app": "reviews"})}
    return service


def observed(*, service: dict[str, Any] = SERVICE, versions: tuple[str, ...] = ("v1", "v2"), **rest: Any) -> Observed:
    return Observed(
        service=service,
        version_services=tuple(version_service(v) for v in versions),
        deployments=rest.pop("deployments", (deployment("v1"), deployment("v2", ours=True))),
        **rest,
    )


def of(decision: Decision, kind: type[Any]) -> list[Any]:
    return [a for a in decision.actions if isinstance(a, kind)]


def weighted_destinations(decision: Decision) -> list[tuple[str, int | None]]:
    (vs,) = [a.body for a in of(decision, act.ApplyRouting) if a.kind == "VirtualService"]
    route = vs["spec"]["http"][-1]["route"]
    return [(entry["destination"]["host"], entry.get("weight")) for entry in route]


def selector_patches(decision: Decision) -> list[dict[str, Any]]:
    return [a.patch for a in of(decision, act.PatchObject) if a.kind == "Service" and a.name == "reviews"]


def test_the_versions_own_services_are_created_first_and_alone() -> None:
    decision = run(spec(routing=MODE), observed(versions=()), CanaryReleaseStatus(phase=Phase.PENDING))

    services = of(decision, act.ApplyService)
    assert [s.body["metadata"]["name"] for s in services] == ["reviews-v1", "reviews-v2"]
    assert services[1].body["spec"]["selector"] == {"app": "reviews", "version": "v2"}
    assert services[1].body["spec"]["ports"] == SERVICE["spec"]["ports"]
    assert not of(decision, act.ApplyRouting) and not selector_patches(decision)
    assert decision.requeue_after is not None and decision.requeue_after <= 2


def test_routes_name_each_versions_service_and_the_service_is_pinned_to_stable() -> None:
    decision = run(spec(routing=MODE), observed(), CanaryReleaseStatus(phase=Phase.PROGRESSING))

    assert weighted_destinations(decision) == [("reviews-v1", 70), ("reviews-v2", 30)]
    (patch,) = selector_patches(decision)
    assert patch["spec"] == {"selector": {"version": "v1"}}
    assert json.loads(patch["metadata"]["annotations"][ORIGINAL_SELECTOR_ANNOTATION]) == {"app": "reviews"}
    # The pin comes after the routes that stop using the Service's own endpoints.
    kinds = [type(a).__name__ for a in decision.actions]
    assert kinds.index("PatchObject") > kinds.index("ApplyRouting")


def test_status_reads_the_weights_back_from_the_version_hosts() -> None:
    the_spec = spec(routing=MODE)
    decision = run(the_spec, observed(), CanaryReleaseStatus(phase=Phase.PROGRESSING))
    (vs,) = [a.body for a in of(decision, act.ApplyRouting) if a.kind == "VirtualService"]

    built = status_.build_status(
        spec=the_spec, previous=CanaryReleaseStatus(), decision=decision, deployments=observed().deployments,
        virtual_service=vs, metrics=None, generation=1, now=NOW,
    )
    assert built.traffic is not None and (built.traffic.stable, built.traffic.canary) == (70, 30)


def test_a_pinned_service_is_left_alone_while_stable_keeps_a_share() -> None:
    decision = run(spec(routing=MODE), observed(service=pinned("v1")), CanaryReleaseStatus(phase=Phase.PROGRESSING))
    assert selector_patches(decision) == []


def test_take_over_by_the_canary_pins_the_service_to_the_canary() -> None:
    seen = observed(service=pinned("v1"))
    decision = run(spec(routing=MODE, takeOver="v2"), seen, CanaryReleaseStatus(phase=Phase.PROGRESSING))

    assert weighted_destinations(decision) == [("reviews-v2", None)]
    assert selector_patches(decision) == [{"spec": {"selector": {"version": "v2"}}}]


def test_blue_green_keeps_every_client_on_stable_before_the_take_over() -> None:
    decision = run(spec(routing=MODE, strategy="BlueGreen"), observed(), CanaryReleaseStatus(phase=Phase.PROGRESSING))

    assert weighted_destinations(decision) == [("reviews-v1", None)]
    assert selector_patches(decision)[0]["spec"] == {"selector": {"version": "v1"}}


def test_abort_restores_the_selector_exactly_and_removes_the_version_services() -> None:
    service = pinned("v1")
    service["spec"]["selector"] = {"app": "reviews", "tier": "backend", "version": "v1"}
    service["metadata"]["annotations"][ORIGINAL_SELECTOR_ANNOTATION] = json.dumps({"app": "reviews", "tier": "backend"})
    vs = adopted("VirtualService", {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]})
    seen = observed(service=service, deployments=(deployment("v1"),), virtual_service=vs)

    decision = run(spec(routing=MODE, abort=True), seen, CanaryReleaseStatus(phase=Phase.PROGRESSING))

    assert decision.phase is Phase.ABORTED
    assert selector_patches(decision) == [
        {"metadata": {"annotations": {ORIGINAL_SELECTOR_ANNOTATION: None}}, "spec": {"selector": {"version": None}}}
    ]
    deleted = [a.name for a in of(decision, act.DeleteObject) if a.kind == "Service"]
    assert deleted == ["reviews-v1", "reviews-v2"]
    kinds = [type(a).__name__ for a in decision.actions]
    assert kinds.index("ReplaceRouting") < kinds.index("PatchObject") < kinds.index("DeleteObject")


def test_offline_hands_back_subset_routing_and_the_users_selector() -> None:
    seen = observed(service=pinned("v2"), deployments=(deployment("v2", ours=True),))

    decision = run(spec(routing=MODE, takeOver="v2", offline=True), seen, CanaryReleaseStatus(phase=Phase.TAKEN_OVER))

    assert decision.phase is Phase.COMPLETED
    (vs,) = [a.body for a in of(decision, act.ApplyRouting) if a.kind == "VirtualService"]
    assert vs["spec"]["http"][-1]["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]
    assert selector_patches(decision)[0]["metadata"]["annotations"] == {ORIGINAL_SELECTOR_ANNOTATION: None}
    assert sorted(a.name for a in of(decision, act.DeleteObject) if a.kind == "Service") == ["reviews-v1", "reviews-v2"]


def test_a_service_of_that_name_that_someone_else_made_is_refused_before_any_write() -> None:
    # The reconciler reports it as Failed (errors.classify); the decision never gets to act.
    seen = Observed(
        service=SERVICE,
        version_services=(version_service("v2", ours=False),),
        deployments=(deployment("v1"), deployment("v2", ours=True)),
    )
    with pytest.raises(errors.ForeignObjectError, match="'reviews-v2' was not created by this release"):
        run(spec(routing=MODE), seen, CanaryReleaseStatus(phase=Phase.PROGRESSING))


def test_subsets_mode_never_treats_a_users_version_service_route_as_the_releases() -> None:
    vs = {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews-v3"}}]}]}
    seen = observed(virtual_service=adopted("VirtualService", vs))
    decision = run(spec(), seen, CanaryReleaseStatus(phase=Phase.PROGRESSING))

    (written,) = [a.body for a in of(decision, act.ApplyRouting) if a.kind == "VirtualService"]
    assert {"route": [{"destination": {"host": "reviews-v3"}}]} in written["spec"]["http"]
    assert not of(decision, act.ApplyService) and not selector_patches(decision)


@pytest.mark.parametrize("recorded", ["not json", "[1, 2]", '{"app": 3}'])
def test_a_broken_selector_record_is_refused_rather_than_guessed(recorded: str) -> None:
    service = pinned("v1")
    service["metadata"]["annotations"][ORIGINAL_SELECTOR_ANNOTATION] = recorded
    with pytest.raises(errors.ForeignObjectError, match="refusing to guess"):
        version_services.unpin_patch(service)


def test_a_version_service_is_patched_only_where_selector_or_ports_differ() -> None:
    desired = version_services.build_version_service(
        service=SERVICE, version="v2", version_label="version", release_name="reviews", existing=version_service("v2")
    )
    assert version_services.service_patch(current=version_service("v2"), desired=desired) is None

    moved = copy.deepcopy(SERVICE)
    moved["spec"]["ports"] = [{"name": "http", "port": 9090}]
    desired = version_services.build_version_service(
        service=moved, version="v2", version_label="version", release_name="reviews", existing=None
    )
    assert version_services.service_patch(current=version_service("v2"), desired=desired) == {
        "spec": {"ports": [{"name": "http", "port": 9090}]}
    }


def test_the_metrics_of_a_release_by_version_services_are_read_under_their_names_too() -> None:
    assert spec(routing=MODE).metric_aliases == ("reviews-v1", "reviews-v2")
    assert spec().metric_aliases == ()
