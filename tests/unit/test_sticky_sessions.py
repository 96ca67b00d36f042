"""Sticky canary sessions (traffic.sessionAffinity): the model, the routes, the state machine."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
import re2
from istio_canary import actions as act
from istio_canary.istio import ServicePort, build_virtual_service, edge, sticky
from istio_canary.istio.plan import RoutePlan, StickySession
from istio_canary.models import (
    CanaryReleaseSpec,
    CanaryReleaseStatus,
    MatchRule,
    Phase,
    StringMatch,
)
from istio_canary.phases import Decision, Observed, ReleaseRef, decide

from tests.unit.test_istio_edge import GATEWAY_VS, HOST
from tests.unit.test_istio_plan import make_plan
from tests.unit.test_phases import SERVICE, _deployment

SESSION = StickySession(cookie_name="canary-session", value="v2-0123abcd", max_age=3600)
HTTP = [ServicePort(name="http", port=9080)]
JASON = MatchRule(headers={"end-user": StringMatch(exact="jason")})


def _build(plan: RoutePlan, *, ports: list[ServicePort] = HTTP, existing: Any = None) -> dict[str, Any]:
    return build_virtual_service(plan=plan, ports=ports, existing=existing, release_name="reviews")


def _spec(**traffic: Any) -> dict[str, Any]:
    return {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "reviews:v2"},
        "traffic": {"weight": 30, "sessionAffinity": {"cookieName": "canary-session"}} | traffic,
    }


# -- the model --------------------------------------------------------------------------------


def test_session_affinity_defaults_to_a_day_and_is_written_back_as_given() -> None:
    spec = CanaryReleaseSpec.model_validate(_spec())
    affinity = spec.traffic.session_affinity
    assert affinity is not None and (affinity.cookie_name, affinity.max_age) == ("canary-session", 86400)
    traffic = spec.to_wire()["traffic"]
    assert isinstance(traffic, dict)
    assert traffic["sessionAffinity"] == {"cookieName": "canary-session", "maxAge": 86400}


@pytest.mark.parametrize(
    "affinity",
    [
        pytest.param({"cookieName": "has space"}, id="space-in-name"),
        pytest.param({"cookieName": "a;b"}, id="semicolon-in-name"),
        pytest.param({"cookieName": "c" * 65}, id="name-too-long"),
        pytest.param({"cookieName": ""}, id="empty-name"),
        pytest.param({"cookieName": "c", "maxAge": 0}, id="max-age-zero"),
        pytest.param({"cookieName": "c", "maxAge": 604801}, id="max-age-over-a-week"),
    ],
)
def test_a_cookie_name_that_is_not_a_token_or_a_max_age_out_of_range_is_refused(affinity: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        CanaryReleaseSpec.model_validate(_spec(sessionAffinity=affinity))


@pytest.mark.parametrize("strategy", ["BlueGreen", "Mirror"])
def test_session_affinity_is_refused_for_strategies_that_send_nobody_to_the_canary_by_weight(strategy: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="it needs strategy Canary"):
        CanaryReleaseSpec.model_validate(_spec() | {"strategy": strategy})


# -- the VirtualService -----------------------------------------------------------------------


def test_the_canary_destination_sets_the_cookie_and_a_cookie_route_comes_before_the_weights() -> None:
    http = _build(make_plan(sticky=SESSION))["spec"]["http"]
    names = [route["name"] for route in http]
    assert names == ["istio-canary-reviews-9080-sticky", "istio-canary-reviews-9080-weighted"]
    assert http[0]["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]
    [request] = http[0]["match"]
    assert set(request) == {"headers"} and set(request["headers"]) == {"cookie"}
    stable, canary = http[1]["route"]
    assert "headers" not in stable
    assert canary["headers"] == {
        "response": {"add": {"Set-Cookie": "canary-session=v2-0123abcd; Max-Age=3600; Path=/"}}
    }


def test_match_routes_come_first_then_the_cookie_route_then_the_weighted_route() -> None:
    http = _build(make_plan(sticky=SESSION, match=(JASON,)))["spec"]["http"]
    assert [route["name"].rsplit("-", 1)[-1] for route in http] == ["0", "sticky", "weighted"]


def test_the_cookie_regex_finds_the_cookie_among_several_and_only_that_exact_cookie() -> None:
    pattern = sticky.cookie_request(SESSION)["headers"]["cookie"]["regex"]
    regex = re2.compile(pattern)
    cookie = "canary-session=v2-0123abcd"
    for header in (cookie, f"a=1; {cookie}; b=2", f"a=1;{cookie}"):
        assert regex.fullmatch(header), header
    for header in ("xcanary-session=v2-0123abcd", "canary-session=v2-0123abcde", "canary-session=v1-0123abcd", ""):
        assert not regex.fullmatch(header), header


def test_regex_characters_in_a_cookie_name_are_escaped() -> None:
    session = StickySession(cookie_name="a.b+c*|$^", value="v2-1", max_age=1)
    regex = re2.compile(sticky.cookie_request(session)["headers"]["cookie"]["regex"])
    assert regex.fullmatch("a.b+c*|$^=v2-1")
    assert not regex.fullmatch("aXb+c*|$^=v2-1") and not regex.fullmatch("abbc=v2-1")


def test_every_port_gets_its_own_cookie_route_on_its_own_port() -> None:
    ports = [ServicePort(name="http", port=9080), ServicePort(name="http-admin", port=9090)]
    http = _build(make_plan(sticky=SESSION), ports=ports)["spec"]["http"]
    assert [route["name"] for route in http] == [
        "istio-canary-reviews-9080-sticky", "istio-canary-reviews-9090-sticky",
        "istio-canary-reviews-9080-weighted", "istio-canary-reviews-9090-weighted",
    ]
    assert [route["match"][0]["port"] for route in http[:2]] == [9080, 9090]
    assert http[1]["route"] == [{"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9090}}}]


def test_routing_mode_services_sends_the_cookie_to_the_canarys_own_service() -> None:
    http = _build(make_plan(sticky=SESSION, version_services=True))["spec"]["http"]
    assert http[0]["route"] == [{"destination": {"host": "reviews-v2"}}]
    assert http[1]["route"][1]["destination"] == {"host": "reviews-v2"} and "headers" in http[1]["route"][1]


def test_a_plan_without_a_session_removes_the_cookie_route_and_header_from_an_earlier_build() -> None:
    before = _build(make_plan(sticky=SESSION))
    after = _build(make_plan(stable_weight=100, canary_weight=0, subsets=("v1", "v2")), existing=before)
    assert [route["name"] for route in after["spec"]["http"]] == ["istio-canary-reviews-9080-weighted"]
    assert after["spec"]["http"][0]["route"] == [{"destination": {"host": "reviews", "subset": "v1"}}]
    assert after == _build(make_plan(stable_weight=100, canary_weight=0))


def test_a_plan_cannot_keep_clients_on_a_canary_without_weight() -> None:
    with pytest.raises(ValueError, match="sticky"):
        make_plan(stable_weight=100, canary_weight=0, sticky=SESSION)


def test_a_gateway_route_gets_a_cookie_copy_with_its_own_matches_and_the_canary_sets_the_cookie() -> None:
    plan = RoutePlan(
        service="productpage", namespace="bookinfo", version_label="version", stable_version="v1",
        canary_version="v2", subsets=("v1", "v2"), stable_weight=80, canary_weight=20, sticky=SESSION,
    )
    split = edge.split_in_place(plan=plan, existing=copy.deepcopy(GATEWAY_VS), release_name="pp")
    http = split["spec"]["http"]
    cookie = sticky.cookie_request(SESSION)["headers"]
    assert http[1]["name"] == "istio-canary-pp-edge-1-sticky" and http[1]["timeout"] == "5s"
    assert http[1]["match"] == [
        {"uri": {"exact": "/productpage"}, "headers": cookie},
        {"uri": {"prefix": "/static"}, "headers": cookie},
    ]
    assert http[1]["route"] == [{"destination": {"host": HOST, "port": {"number": 9080}, "subset": "v2"}}]
    assert http[2]["route"][1]["headers"] == sticky.destination_headers(SESSION)
    without = RoutePlan(**{**plan.__dict__, "sticky": None})
    again = edge.split_in_place(plan=without, existing=split, release_name="pp")["spec"]["http"]
    assert len(again) == 3 and all("headers" not in entry for entry in again[1]["route"])


# -- the state machine ------------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RELEASE = ReleaseRef(namespace="bookinfo", name="reviews", uid="u-1", generation=1)
READY = Observed(
    service=SERVICE, deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ours=True))
)


def _decide(spec: dict[str, Any], observed: Observed = READY, phase: Phase = Phase.PROGRESSING) -> Decision:
    return decide(
        release=RELEASE, spec=CanaryReleaseSpec.model_validate(spec), observed=observed,
        previous=CanaryReleaseStatus(phase=phase), now=NOW, drain_seconds=0,
    )


def _http(decision: Decision) -> list[dict[str, Any]]:
    vs = next(a.body for a in decision.actions if isinstance(a, act.ApplyRouting) and a.kind == "VirtualService")
    return list(vs["spec"]["http"])


def test_a_weighted_canary_with_affinity_gets_a_cookie_named_after_its_version_and_revision() -> None:
    decision = _decide(_spec())
    assert decision.plan is not None and decision.plan.sticky is not None
    assert decision.plan.sticky.value.startswith("v2-") and decision.plan.sticky.max_age == 86400
    assert _http(decision)[0]["name"] == "istio-canary-reviews-9080-sticky"
    # A new image is a new canary: its cookie differs, so the old one sticks to nothing.
    newer = _spec() | {"canary": {"version": "v2", "image": "reviews:v2.1"}}
    plan = _decide(newer).plan
    assert plan is not None and plan.sticky is not None and plan.sticky.value != decision.plan.sticky.value


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"takeOver": "v2"}, id="take-over"),
        pytest.param({"takeOver": "v1"}, id="take-over-by-stable"),
        pytest.param({"traffic": {"weight": 0, "sessionAffinity": {"cookieName": "canary-session"}}}, id="weight-0"),
    ],
)
def test_no_cookie_route_without_canary_weight_or_once_the_release_ends(change: dict[str, Any]) -> None:
    http = _http(_decide(_spec() | change))
    assert all(not route["name"].endswith("-sticky") for route in http)
    assert all("headers" not in entry for route in http for entry in route["route"])


def test_no_cookie_route_while_the_canary_is_not_ready() -> None:
    unready = Observed(
        service=SERVICE,
        deployments=(_deployment("reviews-v1", "v1"), _deployment("reviews-v2", "v2", ready=0, ours=True)),
    )
    decision = _decide(_spec(), unready, Phase.WAITING_FOR_CANARY)
    assert decision.plan is not None and decision.plan.sticky is None


def test_abort_writes_routes_without_the_cookie_route_over_the_sticky_ones() -> None:
    sticky_vs = next(
        a.body for a in _decide(_spec()).actions if isinstance(a, act.ApplyRouting) and a.kind == "VirtualService"
    )
    observed = Observed(service=SERVICE, deployments=READY.deployments, virtual_service=sticky_vs)
    http = _http(_decide(_spec() | {"abort": True}, observed))
    assert [route["name"] for route in http] == ["istio-canary-reviews-9080-weighted"]
    assert http[0]["route"] == [{"destination": {"host": "reviews", "subset": "v1"}}]


def test_the_plugin_says_the_session_cookie_sends_requests_to_the_canary() -> None:
    from istio_canary.plugin import views

    affinity = {"sessionAffinity": {"cookieName": "canary-session"}}
    assert views._matched_note({"traffic": affinity}) == (
        "requests matching the canary-session cookie of sticky sessions go to the canary"
    )
    both = views._matched_note({"traffic": {**affinity, "match": [{"uri": {"prefix": "/b"}}]}})
    assert both == (
        "requests matching traffic.match rules or the canary-session cookie of sticky sessions go to the canary"
    )
    assert views._matched_note({"traffic": {"match": []}}) == "requests matching traffic.match rules go to the canary"
