"""The VirtualService builder: weights, match routes, mirroring, ports, adopting a user's object."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from istio_canary.errors import ForeignObjectError, RoutingError
from istio_canary.istio import (
    ORIGINAL_SPEC_ANNOTATION,
    RELEASE_LABEL,
    ServicePort,
    build_virtual_service,
    read_back_traffic,
)
from istio_canary.models import MatchRule, OperatingSystem, StringMatch

from tests.unit.test_istio_plan import make_plan

HTTP = [ServicePort(name="http", port=9080)]
JASON = MatchRule(headers={"end-user": StringMatch(exact="jason")})


def build(
    plan: Any = None, *, ports: list[ServicePort] = HTTP, existing: Any = None
) -> dict[str, Any]:
    return build_virtual_service(
        plan=plan or make_plan(), ports=ports, existing=existing, release_name="reviews"
    )


def user_vs() -> dict[str, Any]:
    """A hand-written VirtualService for reviews, as a cluster admin might have applied it."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "reviews-routes",
            "namespace": "bookinfo",
            "resourceVersion": "42",
            "uid": "0d9f-uid",
            "generation": 3,
            "labels": {"team": "books"},
            "annotations": {"note": "hand-written"},
        },
        "spec": {
            "hosts": ["reviews", "reviews.example.com"],
            "gateways": ["mesh", "bookinfo-gateway"],
            "http": [
                {
                    "name": "legacy",
                    "match": [{"uri": {"prefix": "/old"}}],
                    "redirect": {"uri": "/new"},
                },
                {
                    "name": "jason",
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                },
                {
                    "name": "ratings-split",
                    "match": [{"uri": {"prefix": "/ratings"}}],
                    "route": [
                        {"destination": {"host": "ratings", "subset": "v1"}, "weight": 50},
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                    ],
                    "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 1.0}}},
                },
                {
                    "name": "default",
                    "route": [
                        {
                            "destination": {
                                "host": "reviews.bookinfo.svc.cluster.local",
                                "subset": "v1",
                            }
                        }
                    ],
                    "retries": {"attempts": 3, "perTryTimeout": "2s"},
                    "timeout": "10s",
                    "fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": 5.0}}},
                },
                {"name": "other", "route": [{"destination": {"host": "details"}}], "timeout": "3s"},
            ],
            "tcp": [{"route": [{"destination": {"host": "mongo"}}]}],
        },
    }


def names(vs: dict[str, Any]) -> list[str | None]:
    return [route.get("name") for route in vs["spec"].get("http", [])]


def test_created_virtual_service_is_named_after_the_service_and_owned() -> None:
    vs = build()

    assert vs["apiVersion"] == "networking.istio.io/v1"
    assert vs["kind"] == "VirtualService"
    assert vs["metadata"] == {
        "name": "reviews",
        "namespace": "bookinfo",
        "labels": {
            "app.kubernetes.io/managed-by": "istio-canary-operator",
            RELEASE_LABEL: "reviews",
        },
    }
    assert vs["spec"]["hosts"] == ["reviews"]
    assert "tcp" not in vs["spec"]


def test_weighted_route_splits_between_stable_and_canary_subsets() -> None:
    vs = build(make_plan(stable_weight=70, canary_weight=30))

    assert vs["spec"]["http"] == [
        {
            "name": "istio-canary-reviews-9080-weighted",
            "route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": 70},
                {"destination": {"host": "reviews", "subset": "v2"}, "weight": 30},
            ],
        }
    ]


@given(st.integers(0, 100))
def test_weights_in_the_virtual_service_add_up_to_100_and_read_back_as_planned(canary: int) -> None:
    plan = make_plan(stable_weight=100 - canary, canary_weight=canary)

    vs = build(plan)

    [route] = vs["spec"]["http"]
    weights = [entry.get("weight", 100) for entry in route["route"]]
    assert sum(weights) == 100
    assert all(weight > 0 for weight in weights)
    traffic = read_back_traffic(vs, service="reviews", stable_version="v1", canary_version="v2")
    assert (traffic.stable, traffic.canary) == (100 - canary, canary)


def test_take_over_sends_all_traffic_to_canary_with_a_single_unweighted_destination() -> None:
    vs = build(make_plan(stable_weight=0, canary_weight=100))

    assert vs["spec"]["http"][0]["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]


def test_match_routes_come_first_and_send_everything_to_the_canary() -> None:
    other = MatchRule(os=[OperatingSystem.LINUX, OperatingSystem.IOS])
    vs = build(make_plan(match=(JASON, other), stable_weight=100, canary_weight=0))

    http = vs["spec"]["http"]
    assert names(vs) == [
        "istio-canary-reviews-9080-match-0",
        "istio-canary-reviews-9080-match-1",
        "istio-canary-reviews-9080-weighted",
    ]
    assert http[0]["match"] == [{"headers": {"end-user": {"exact": "jason"}}}]
    assert len(http[1]["match"]) == 2
    for route in http[:2]:
        assert route["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]
    assert http[2]["route"] == [{"destination": {"host": "reviews", "subset": "v1"}}]


def test_mirror_copies_requests_to_the_canary_while_stable_answers() -> None:
    vs = build(make_plan(stable_weight=100, canary_weight=0, mirror_percent=25))

    [route] = vs["spec"]["http"]
    assert route["route"] == [{"destination": {"host": "reviews", "subset": "v1"}}]
    assert route["mirror"] == {"host": "reviews", "subset": "v2"}
    assert route["mirrorPercentage"] == {"value": 25.0}
    assert isinstance(route["mirrorPercentage"]["value"], float)


def test_every_port_of_a_multi_port_service_is_routed_to_its_own_port() -> None:
    ports = [ServicePort(name="grpc", port=9090), ServicePort(name="http", port=9080)]
    vs = build(make_plan(match=(JASON,)), ports=ports)

    assert names(vs) == [
        "istio-canary-reviews-9080-match-0",
        "istio-canary-reviews-9090-match-0",
        "istio-canary-reviews-9080-weighted",
        "istio-canary-reviews-9090-weighted",
    ]
    for route in vs["spec"]["http"]:
        port = int(route["name"].split("-")[3])
        assert route["match"] and all(request["port"] == port for request in route["match"])
        assert all(entry["destination"]["port"] == {"number": port} for entry in route["route"])
    assert vs["spec"]["http"][0]["match"][0]["headers"] == {"end-user": {"exact": "jason"}}


def test_tcp_ports_get_weighted_tcp_routes_and_sniffed_ports_get_both() -> None:
    ports = [
        ServicePort(name="tcp-db", port=3306),
        ServicePort(name="", port=8080),
        ServicePort(name="dns", port=53, protocol="UDP"),
    ]
    vs = build(make_plan(stable_weight=60, canary_weight=40), ports=ports)

    assert names(vs) == ["istio-canary-reviews-8080-weighted"]
    tcp = vs["spec"]["tcp"]
    assert [route["match"] for route in tcp] == [[{"port": 3306}], [{"port": 8080}]]
    assert tcp[0]["route"] == [
        {
            "destination": {"host": "reviews", "subset": "v1", "port": {"number": 3306}},
            "weight": 60,
        },
        {
            "destination": {"host": "reviews", "subset": "v2", "port": {"number": 3306}},
            "weight": 40,
        },
    ]


def test_single_tcp_port_gets_no_port_fields() -> None:
    vs = build(ports=[ServicePort(name="tcp", port=27017)])

    assert "http" not in vs["spec"]
    assert vs["spec"]["tcp"] == [
        {
            "route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": 70},
                {"destination": {"host": "reviews", "subset": "v2"}, "weight": 30},
            ]
        }
    ]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"match": (JASON,)}, "traffic.match"), ({"mirror_percent": 50.0}, "traffic.mirrorPercent")],
)
def test_request_routing_on_an_opaque_tcp_port_is_rejected(
    overrides: dict[str, Any], field: str
) -> None:
    ports = [ServicePort(name="http", port=9080), ServicePort(name="tcp-db", port=3306)]

    with pytest.raises(RoutingError) as caught:
        build(make_plan(**overrides), ports=ports)

    assert str(caught.value).startswith(f"{field}: port 3306 (tcp-db)")


def test_service_without_a_tcp_port_is_rejected() -> None:
    with pytest.raises(RoutingError, match="no TCP port"):
        build(ports=[ServicePort(name="dns", port=53, protocol="UDP")])


def test_invalid_regex_in_a_match_rule_is_rejected_with_its_path() -> None:
    bad = MatchRule(headers={"end-user": StringMatch(regex="(jason")})

    with pytest.raises(
        RoutingError, match=r"^traffic\.match\[1\]\.headers\.end-user\.regex: missing \)"
    ):
        build(make_plan(match=(JASON, bad)))


def test_adoption_keeps_foreign_routes_fields_and_metadata() -> None:
    original = user_vs()

    vs = build(make_plan(match=(JASON,)), existing=original)

    spec = vs["spec"]
    assert spec["hosts"] == ["reviews", "reviews.example.com"]
    assert spec["gateways"] == ["mesh", "bookinfo-gateway"]
    assert spec["tcp"] == original["spec"]["tcp"]
    assert names(vs) == [
        "legacy",
        "ratings-split",
        "istio-canary-reviews-9080-match-0",
        "istio-canary-reviews-9080-weighted",
        "other",
    ]
    by_name = {route["name"]: route for route in spec["http"]}
    for name in ("legacy", "ratings-split", "other"):
        assert by_name[name] == next(r for r in original["spec"]["http"] if r["name"] == name)
    metadata = vs["metadata"]
    assert metadata["name"] == "reviews-routes"
    assert metadata["labels"] == {"team": "books", RELEASE_LABEL: "reviews"}
    assert metadata["annotations"]["note"] == "hand-written"
    assert not {"resourceVersion", "uid", "generation"} & set(metadata)
    assert original == user_vs(), "the builder must not modify its input"


def test_adoption_carries_retries_timeout_and_fault_of_the_replaced_default_route() -> None:
    vs = build(make_plan(match=(JASON,)), existing=user_vs())

    for route in vs["spec"]["http"]:
        if route["name"].startswith("istio-canary-"):
            assert route["retries"] == {"attempts": 3, "perTryTimeout": "2s"}
            assert route["timeout"] == "10s"
            assert route["fault"] == {"delay": {"fixedDelay": "1s", "percentage": {"value": 5.0}}}


def test_adoption_records_the_original_spec_once() -> None:
    original = user_vs()

    adopted = build(existing=original)
    rebuilt = build(make_plan(stable_weight=10, canary_weight=90), existing=adopted)

    recorded = rebuilt["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION]
    assert json.loads(recorded) == original["spec"]


def test_a_users_mirror_elsewhere_is_kept_but_the_operators_old_mirror_is_not() -> None:
    original = user_vs()
    original["spec"]["http"][3]["mirror"] = {"host": "shadow"}
    original["spec"]["http"][3]["mirrorPercentage"] = {"value": 1.0}

    mirroring = build(make_plan(mirror_percent=50.0), existing=original)
    after = build(make_plan(), existing=mirroring)

    [weighted] = [r for r in mirroring["spec"]["http"] if r["name"].endswith("-weighted")]
    assert weighted["mirror"] == {"host": "reviews", "subset": "v2"}
    [weighted] = [r for r in after["spec"]["http"] if r["name"].endswith("-weighted")]
    assert weighted["mirror"] == {"host": "shadow"}
    assert weighted["mirrorPercentage"] == {"value": 1.0}


@st.composite
def plans(draw: st.DrawFn) -> Any:
    """Any plan the state machine may produce, job offline (one subset left) included."""
    canary = draw(st.integers(0, 100))
    offline = canary in (0, 100) and draw(st.booleans())
    subsets = (("v1",) if canary == 0 else ("v2",)) if offline else ("v1", "v2")
    with_canary = "v2" in subsets
    mirror = draw(st.one_of(st.none(), st.floats(0, 100))) if with_canary else None
    rules = [JASON, MatchRule(uri=StringMatch(prefix="/v2"))]
    match = draw(st.lists(st.sampled_from(rules), max_size=2)) if with_canary else []
    return make_plan(
        stable_weight=100 - canary,
        canary_weight=canary,
        subsets=subsets,
        mirror_percent=mirror,
        match=tuple(match),
    )


port_sets = st.sampled_from(
    [HTTP, [ServicePort(name="http", port=9080), ServicePort(name="grpc-api", port=9090)]]
)


@settings(max_examples=60)
@given(first=plans(), second=plans(), ports=port_sets, shadow=st.booleans())
def test_building_from_an_adopted_object_equals_building_from_the_original(
    first: Any, second: Any, ports: list[ServicePort], shadow: bool
) -> None:
    original = user_vs()
    if shadow:
        original["spec"]["http"][3]["mirror"] = {"host": "shadow"}

    adopted = build(first, ports=ports, existing=original)
    again = build(second, ports=ports, existing=copy.deepcopy(adopted))

    assert again == build(second, ports=ports, existing=original)


@settings(max_examples=30)
@given(first=plans(), second=plans(), ports=port_sets)
def test_rebuilding_a_created_object_equals_building_it_fresh(
    first: Any, second: Any, ports: list[ServicePort]
) -> None:
    created = build(first, ports=ports)
    created["metadata"]["resourceVersion"] = "7"

    assert build(second, ports=ports, existing=created) == build(second, ports=ports)


def test_output_is_json_ready() -> None:
    vs = build(make_plan(match=(JASON,), mirror_percent=5.5), existing=user_vs())

    assert json.loads(json.dumps(vs)) == vs


def test_object_of_another_release_is_refused() -> None:
    other = build_virtual_service(plan=make_plan(), ports=HTTP, existing=None, release_name="other")

    with pytest.raises(ForeignObjectError, match="belongs to release 'other'"):
        build(existing=other)
