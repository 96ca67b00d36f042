"""Gateway-bound and delegate VirtualServices, split route by route where they route to the host."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from istio_canary.errors import ForeignObjectError, RoutingError
from istio_canary.istio import edge, ownership
from istio_canary.istio.plan import RoutePlan
from istio_canary.models import MatchRule

HOST = "productpage.bookinfo.svc.cluster.local"
# Istio's bookinfo-gateway VirtualService, moved to istio-system (so it names the FQDN).
GATEWAY_VS: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "bookinfo", "namespace": "istio-system", "resourceVersion": "3"},
    "spec": {
        "hosts": ["bookinfo.example.com"],
        "gateways": ["bookinfo-gateway"],
        "http": [
            {"match": [{"uri": {"exact": "/healthz"}}], "directResponse": {"status": 200}},
            {
                "match": [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}}],
                "route": [{"destination": {"host": HOST, "port": {"number": 9080}}}],
                "timeout": "5s",
            },
            {"route": [{"destination": {"host": "details.bookinfo.svc.cluster.local"}}]},
        ],
    },
}


def plan(stable: int = 80, *, match: tuple[MatchRule, ...] = (), mirror: float | None = None) -> RoutePlan:
    return RoutePlan(
        service="productpage", namespace="bookinfo", version_label="version", stable_version="v1",
        canary_version="v2", subsets=("v1", "v2"), stable_weight=stable, canary_weight=100 - stable,
        match=match, mirror_percent=mirror,
    )


def split(the_plan: RoutePlan, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    return edge.split_in_place(plan=the_plan, existing=existing or copy.deepcopy(GATEWAY_VS), release_name="pp")


def test_only_the_route_to_the_host_changes_and_only_its_destinations() -> None:
    spec = split(plan())["spec"]
    assert spec["hosts"] == ["bookinfo.example.com"] and spec["gateways"] == ["bookinfo-gateway"]
    assert spec["http"][0] == GATEWAY_VS["spec"]["http"][0] and spec["http"][2] == GATEWAY_VS["spec"]["http"][2]
    routed = spec["http"][1]
    assert routed["match"] == GATEWAY_VS["spec"]["http"][1]["match"] and routed["timeout"] == "5s"
    assert routed["route"] == [
        {"destination": {"host": HOST, "port": {"number": 9080}, "subset": "v1"}, "weight": 80},
        {"destination": {"host": HOST, "port": {"number": 9080}, "subset": "v2"}, "weight": 20},
    ]


def test_the_original_is_recorded_once_and_a_rebuild_gives_the_same_object() -> None:
    first = split(plan(50))
    assert json.loads(first["metadata"]["annotations"][ownership.ORIGINAL_SPEC_ANNOTATION]) == GATEWAY_VS["spec"]
    assert split(plan(50), existing=copy.deepcopy(first)) == first
    # Back to 100% stable: one destination, no weight, as Istio's own samples write it.
    pinned = split(plan(100), existing=copy.deepcopy(first))["spec"]["http"][1]["route"]
    assert pinned == [{"destination": {"host": HOST, "port": {"number": 9080}, "subset": "v1"}}]


def test_a_traffic_rule_is_combined_with_the_routes_own_matches_ahead_of_it() -> None:
    rule = MatchRule.model_validate({"headers": {"end-user": {"exact": "jason"}}})
    http = split(plan(match=(rule,)))["spec"]["http"]
    copy_, routed = http[1], http[2]
    assert copy_["name"] == "istio-canary-pp-edge-1-match-0"
    assert copy_["match"] == [
        {"uri": {"exact": "/productpage"}, "headers": {"end-user": {"exact": "jason"}}},
        {"uri": {"prefix": "/static"}, "headers": {"end-user": {"exact": "jason"}}},
    ]
    assert copy_["route"] == [{"destination": {"host": HOST, "port": {"number": 9080}, "subset": "v2"}}]
    assert [d["weight"] for d in routed["route"]] == [80, 20]
    # Dropped again when the plan has no rule any more.
    assert len(split(plan(), existing=split(plan(match=(rule,))))["spec"]["http"]) == 3


def test_a_rule_on_the_uri_cannot_be_combined_with_a_route_that_matches_the_uri() -> None:
    rule = MatchRule.model_validate({"uri": {"prefix": "/beta"}})
    with pytest.raises(RoutingError, match="cannot be combined with a route that matches uri"):
        split(plan(match=(rule,)))


def test_a_mirror_is_added_to_the_split_route_and_removed_when_the_plan_stops_mirroring() -> None:
    mirrored = split(plan(100, mirror=25.0))
    routed = mirrored["spec"]["http"][1]
    assert routed["mirror"] == {"host": HOST, "port": {"number": 9080}, "subset": "v2"}
    assert routed["mirrorPercentage"] == {"value": 25.0}
    assert "mirror" not in split(plan(100), existing=mirrored)["spec"]["http"][1]


def test_a_short_name_in_another_namespace_is_another_service_and_is_left_alone() -> None:
    other = copy.deepcopy(GATEWAY_VS)
    other["spec"]["http"][1]["route"][0]["destination"]["host"] = "productpage"
    assert split(plan(), existing=other)["spec"]["http"][1] == other["spec"]["http"][1]


def test_a_delegate_is_split_and_a_root_that_delegates_is_left_alone() -> None:
    delegate = {"metadata": {"name": "pp-routes", "namespace": "bookinfo"}, "spec": {"http": [
        {"match": [{"uri": {"prefix": "/productpage"}}], "route": [{"destination": {"host": "productpage"}}]},
    ]}}
    root = {"metadata": {"name": "root", "namespace": "bookinfo"}, "spec": {"hosts": ["bookinfo.example.com"], "http": [
        {"match": [{"uri": {"prefix": "/productpage"}}], "delegate": {"name": "pp-routes", "namespace": "bookinfo"}},
    ]}}
    assert edge.routes_to_host(delegate, service="productpage", namespace="bookinfo")
    assert not edge.routes_to_host(root, service="productpage", namespace="bookinfo")
    assert [d["weight"] for d in split(plan(), existing=delegate)["spec"]["http"][0]["route"]] == [80, 20]


def test_another_releases_object_is_refused() -> None:
    theirs = copy.deepcopy(GATEWAY_VS)
    theirs["metadata"]["labels"] = {ownership.RELEASE_LABEL: "details"}
    with pytest.raises(ForeignObjectError, match="belongs to release 'details'"):
        split(plan(), existing=theirs)
