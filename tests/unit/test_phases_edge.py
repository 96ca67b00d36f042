"""Every VirtualService that routes to the host is split, restored and handed over with the release's own."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from istio_canary import actions as act
from istio_canary import errors
from istio_canary import status as status_
from istio_canary.istio import ownership
from istio_canary.k8s import cache
from istio_canary.models import CanaryReleaseStatus, Phase
from istio_canary.phases import Decision, Observed

from tests.unit.builders import NOW, SERVICE, adopted, deployment, run, spec, user_object

FQDN = "reviews.bookinfo.svc.cluster.local"
GATEWAY: dict[str, Any] = {
    "hosts": ["reviews.example.com"],
    "gateways": ["istio-system/public"],
    "http": [
        {
            "match": [{"uri": {"prefix": "/reviews"}}],
            "route": [{"destination": {"host": FQDN, "port": {"number": 9080}}}],
        }
    ],
}


def gateway_vs(*, marked: bool = False) -> dict[str, Any]:
    obj = (
        adopted("VirtualService", GATEWAY, name="public")
        if marked
        else user_object("VirtualService", GATEWAY, name="public")
    )
    obj["metadata"]["namespace"] = "istio-system"
    return obj


def observed(edge: dict[str, Any], *, ours: bool = True) -> Observed:
    return Observed(
        service=SERVICE,
        deployments=(deployment("v1"), deployment("v2", ours=ours)),
        edge_virtual_services=(edge,),
    )


def listed() -> dict[str, Any]:
    return {"virtualServices": [{"name": "public", "namespace": "istio-system"}]}


def edge_writes(decision: Decision) -> list[act.Action]:
    return [a for a in decision.actions if getattr(a, "namespace", None) == "istio-system"]


def test_a_gateway_virtual_service_in_another_namespace_is_split_there() -> None:
    decision = run(spec(routing=listed()), observed(gateway_vs()), CanaryReleaseStatus(phase=Phase.PROGRESSING))
    (write,) = edge_writes(decision)
    assert isinstance(write, act.ApplyRouting) and write.body["metadata"]["name"] == "public"
    route = write.body["spec"]["http"][0]
    assert route["match"] == GATEWAY["http"][0]["match"]
    assert [(d["destination"]["subset"], d["weight"]) for d in route["route"]] == [("v1", 70), ("v2", 30)]


def test_abort_restores_the_gateway_virtual_service_where_it_lives() -> None:
    the_spec = spec(routing=listed(), abort=True)
    decision = run(
        the_spec, observed(gateway_vs(marked=True), ours=False), CanaryReleaseStatus(phase=Phase.PROGRESSING)
    )
    (restore,) = edge_writes(decision)
    assert isinstance(restore, act.ReplaceRouting) and restore.body["spec"] == GATEWAY


def test_completion_hands_the_gateway_virtual_service_over_too() -> None:
    the_spec = spec(routing=listed(), takeOver="v2", offline=True)
    decision = run(the_spec, observed(gateway_vs(marked=True)), CanaryReleaseStatus(phase=Phase.COMPLETED))
    (patch,) = edge_writes(decision)
    assert isinstance(patch, act.PatchObject) and patch.name == "public"
    assert patch.patch["metadata"]["annotations"] == {ownership.ORIGINAL_SPEC_ANNOTATION: None}


def test_a_listed_virtual_service_that_is_not_there_fails_the_release_and_nothing_moves() -> None:
    missing = Observed(service=SERVICE, deployments=(deployment("v1"), deployment("v2", ours=True)))
    decision = run(spec(routing=listed()), missing, CanaryReleaseStatus(phase=Phase.PROGRESSING))
    assert decision.phase is Phase.FAILED and decision.actions == ()
    assert "VirtualService istio-system/public not found" in decision.message


def test_a_gateway_virtual_service_another_release_holds_is_refused_before_any_write() -> None:
    # The reconciler reports it as Failed (errors.classify); the decision never gets to act.
    theirs = gateway_vs(marked=True)
    theirs["metadata"]["labels"] = {ownership.RELEASE_LABEL: "details"}
    with pytest.raises(errors.ForeignObjectError, match="belongs to release 'details'"):
        run(spec(routing=listed()), observed(theirs), CanaryReleaseStatus(phase=Phase.PROGRESSING))


def test_the_cache_finds_virtual_services_that_route_to_the_host_the_marked_ones_and_the_listed_ones() -> None:
    mesh = user_object(
        "VirtualService", {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}
    )
    delegate = user_object(
        "VirtualService", {"http": [{"route": [{"destination": {"host": "reviews"}}]}]}, name="delegate"
    )
    other = user_object(
        "VirtualService",
        {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings"}}]}]},
        name="ratings",
    )
    marked = copy.deepcopy(other)
    marked["metadata"].update(name="was-ours", labels={ownership.RELEASE_LABEL: "reviews"})
    found = cache.edge_routing(
        {"bookinfo": [mesh, delegate, other, marked], "istio-system": [gateway_vs()]},
        namespace="bookinfo", service="reviews", release="reviews",
        listed=[("istio-system", "public")], primary="reviews",
    )
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in found] == [
        ("bookinfo", "delegate"), ("bookinfo", "was-ours"), ("istio-system", "public"),
    ]


def test_a_nodeport_service_is_reported_as_a_path_around_the_mesh_once_and_in_a_condition() -> None:
    nodeport = copy.deepcopy(SERVICE)
    nodeport["spec"]["type"] = "NodePort"
    seen = Observed(service=nodeport, deployments=(deployment("v1"), deployment("v2", ours=True)))
    first = run(spec(), seen, CanaryReleaseStatus(phase=Phase.PROGRESSING))
    assert "type NodePort" in (first.bypass or "")
    assert [e.reason for e in first.events if e.type == "Warning"] == ["MeshBypass"]
    status = status_.build_status(
        spec=spec(), previous=CanaryReleaseStatus(), decision=first, deployments=list(seen.deployments),
        virtual_service=None, metrics=None, generation=1, now=NOW,
    )
    condition = next(c for c in status.conditions if c.type == "MeshOnly")
    assert (condition.status, condition.reason) == ("False", "MeshBypass")
    again = run(spec(), seen, status.model_copy(update={"phase": Phase.PROGRESSING}))
    assert not [e for e in again.events if e.reason == "MeshBypass"], "said once, not at every look"
    plain = run(
        spec(), Observed(service=SERVICE, deployments=seen.deployments), CanaryReleaseStatus(phase=Phase.PROGRESSING)
    )
    assert plain.bypass == ""


def test_the_cache_reads_a_host_as_the_builders_do_any_cluster_domain_included() -> None:
    def vs(name: str, host: str) -> dict[str, Any]:
        return user_object("VirtualService", {"hosts": [host]}, name=name)

    items = [
        vs("other-namespace", "reviews.other.svc.cluster.local"),
        vs("custom-domain", "reviews.bookinfo.svc.corp.example"),
    ]
    picked = cache.pick_routing(items, kind="VirtualService", namespace="bookinfo", service="reviews")
    assert picked is not None and picked["metadata"]["name"] == "custom-domain"
    assert cache.pick_routing(items[:1], kind="VirtualService", namespace="bookinfo", service="reviews") is None
