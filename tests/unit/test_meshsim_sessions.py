"""The mesh simulator returns the headers the mesh adds, and its sticky clients keep their cookies."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from meshsim import envoy_routes, headers, routers, server, sessions
from meshsim.matching import Request
from meshsim.simulator import Simulator

from tests.unit.test_meshsim_envoy_routes import BOOKINFO

HOST = "reviews.bookinfo.svc.cluster.local"
COOKIE = "canary-session=v2-abc; Max-Age=3600; Path=/"
STICKY_REGEX = r"^(?:.*;\s*)?canary-session=v2-abc(?:;.*)?$"


def _cluster(version: str) -> dict[str, Any]:
    workload = f"reviews-{version};bookinfo;reviews;{version};Kubernetes"
    return {
        "name": f"outbound|9080|{version}|{HOST}",
        "type": "EDS",
        "endpoints": [{"address": f"10.0.0.{len(version)}", "port": 9080, "health": "HEALTHY", "workload": workload}],
    }


def envoy_config(canary_weight: int, *, sticky: bool = True) -> envoy_routes.EnvoyConfig:
    """istiod's translation of the operator's sticky routes, in the shape it pushes them."""
    canary: dict[str, Any] = {"name": f"outbound|9080|v2|{HOST}", "weight": canary_weight}
    if sticky:
        canary["responseHeadersToAdd"] = [{"header": {"key": "Set-Cookie", "value": COOKIE}}]
    weighted = {"clusters": [{"name": f"outbound|9080|v1|{HOST}", "weight": 100 - canary_weight}, canary]}
    routes: list[dict[str, Any]] = [
        {"name": "weighted", "match": {"prefix": "/"}, "route": {"weightedClusters": weighted}}
    ]
    if sticky:
        cookie = {"name": "cookie", "stringMatch": {"safeRegex": {"regex": STICKY_REGEX}}}
        match = {"prefix": "/", "caseSensitive": True, "headers": [cookie]}
        routes.insert(0, {"name": "sticky", "match": match, "route": {"cluster": f"outbound|9080|v2|{HOST}"}})
    vhost = {"name": f"{HOST}:9080", "domains": [HOST, "reviews"], "routes": routes}
    route_configs = [{"name": "9080", "virtualHosts": [vhost]}]
    clusters = [_cluster("v1"), _cluster("v2")]
    return envoy_routes.parse_config({"routeConfigurations": route_configs, "clusters": clusters})


def _sim(config: envoy_routes.EnvoyConfig) -> Simulator:
    sim = Simulator(snapshot_source=lambda: BOOKINFO, router=routers.EnvoyRouter({"bookinfo": config}), seed=5)
    sim.refresh()
    return sim


def test_only_responses_of_the_weighted_cluster_that_adds_it_carry_the_set_cookie() -> None:
    rng = random.Random(1)
    seen = set()
    for _ in range(200):
        request = Request(host="reviews", namespace="bookinfo", port=9080)
        decision = envoy_routes.route(request, BOOKINFO, envoy_config(50), rng=rng)
        assert decision.destination is not None
        seen.add((decision.destination.version, decision.response_headers))
    assert seen == {("v1", ()), ("v2", (("Set-Cookie", COOKIE),))}


def test_route_and_virtual_host_headers_follow_the_clusters_and_overwrite_wins() -> None:
    action = {"weightedClusters": {"clusters": [{"name": "c", "responseHeadersToAdd": [
        {"header": {"key": "x-a", "value": "cluster"}}]}]}}
    route_entry = {"responseHeadersToAdd": [{"header": {"key": "x-a", "value": "route"}}]}
    vhost = {"responseHeadersToAdd": [
        {"header": {"key": "X-A", "value": "vhost"}, "appendAction": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-b", "value": "b"}, "appendAction": "ADD_IF_ABSENT"},
    ]}
    added = headers.envoy_response_headers(cluster="c", action=action, route_entry=route_entry, vhost=vhost)
    assert added == (("X-A", "vhost"), ("x-b", "b"))
    only_cluster = headers.envoy_response_headers(cluster="c", action=action, route_entry={}, vhost=None)
    assert only_cluster == (("x-a", "cluster"),)


def test_the_virtualservice_reader_adds_the_destinations_then_the_routes_response_headers() -> None:
    destination = {"headers": {"response": {"add": {"Set-Cookie": COOKIE}}}}
    route = {"headers": {"response": {"set": {"x-route": "1"}, "remove": ["x-gone"]}}}
    assert headers.istio_response_headers(destination=destination, http_route=route) == (
        ("Set-Cookie", COOKIE), ("x-route", "1"),
    )


def test_set_cookie_is_parsed_and_max_age_zero_deletes_the_cookie() -> None:
    assert sessions.parse_set_cookie(COOKIE) == ("canary-session", "v2-abc", 3600)
    assert sessions.parse_set_cookie("no-equals-sign; Path=/") is None
    jar = sessions.CookieJar()
    jar.receive(["a=1", COOKIE])
    assert jar.header() == "a=1; canary-session=v2-abc"
    jar.receive(["canary-session=; Max-Age=0"])
    assert jar.header() == "a=1"


def test_clients_the_canary_served_stay_on_it_at_every_later_weight_the_others_follow_the_weight() -> None:
    sim = _sim(envoy_config(10))
    first = sim.session_round(name="users", host="reviews", namespace="bookinfo", port=9080, clients=400)
    on_canary = {r.client for r in first if r.versions == ("v2",)}
    assert 15 <= len(on_canary) <= 70  # Binomial(400, 0.1): 40, give or take 4 deviations
    assert all(r.cookies == {"canary-session": "v2-abc"} for r in first if r.client in on_canary)
    assert all(r.cookies == {} for r in first if r.client not in on_canary)

    assert isinstance(sim.router, routers.EnvoyRouter)
    sim.router.update("bookinfo", envoy_config(60))
    later = sim.session_round(name="users", host="reviews", namespace="bookinfo", port=9080, clients=400, requests=5)
    for report in later:
        if report.client in on_canary:
            assert report.versions == ("v2",) * 5, report
    others = [v for r in later if r.client not in on_canary for v in r.versions[:1]]
    assert 0.45 < others.count("v2") / len(others) < 0.75

    # Without the sticky route (an abort), every cookie sticks to nothing: all on v1.
    sim.router.update("bookinfo", envoy_config(0, sticky=False))
    ended = sim.session_round(name="users", host="reviews", namespace="bookinfo", port=9080, clients=400)
    assert {v for r in ended for v in r.versions} == {"v1"}
    sim.forget_sessions("users")
    fresh = sim.session_round(name="users", host="reviews", namespace="bookinfo", port=9080, clients=1)
    assert fresh[0].cookies == {}


def test_the_virtualservice_reader_sets_the_cookie_of_the_canarys_destination() -> None:
    vs = {
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": 50,
             "headers": {"response": {"add": {"Set-Cookie": COOKIE}}}},
        ]}]},
    }
    dr = {"metadata": {"name": "reviews", "namespace": "bookinfo"}, "spec": {"host": "reviews", "subsets": [
        {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}}
    snapshot = dataclasses.replace(BOOKINFO, virtual_services=(vs,), destination_rules=(dr,))
    sim = Simulator(snapshot_source=lambda: snapshot, seed=2)
    sim.refresh()
    reports = sim.session_round(name="u", host="reviews", namespace="bookinfo", port=9080, clients=100)
    assert {r.versions[0] for r in reports if r.cookies} == {"v2"}
    assert {r.versions[0] for r in reports if not r.cookies} == {"v1"}


@pytest.mark.parametrize("body", [{"host": "reviews"}, {"host": "reviews", "namespace": "b", "clients": 0}])
async def test_the_sessions_api_refuses_a_body_without_clients_or_with_none(body: dict[str, Any]) -> None:
    async with TestClient(TestServer(server.build_app(_sim(envoy_config(10))))) as client:
        response = await client.post("/sessions/users", json=body)
        assert response.status == 400 and "error" in await response.json()


async def test_the_sessions_api_sends_rounds_and_forgets_the_clients() -> None:
    async with TestClient(TestServer(server.build_app(_sim(envoy_config(100))))) as client:
        body = {"host": "reviews", "namespace": "bookinfo", "port": 9080, "clients": 3, "requests": 2}
        answer = await (await client.post("/sessions/users", json=body)).json()
        assert [c["versions"] for c in answer["clients"]] == [["v2", "v2"]] * 3
        assert all(c["cookies"] == {"canary-session": "v2-abc"} for c in answer["clients"])
        assert (await client.delete("/sessions/users")).status == 200


async def test_a_single_request_answers_the_headers_the_mesh_added_and_leaves_them_out_when_none() -> None:
    async with TestClient(TestServer(server.build_app(_sim(envoy_config(100))))) as client:
        body = {"host": "reviews", "namespace": "bookinfo", "port": 9080}
        answer = await (await client.post("/request", json=body)).json()
        assert answer["responseHeaders"] == [["Set-Cookie", COOKIE]]
        with_cookie = body | {"headers": {"cookie": "canary-session=v2-abc"}}
        sticky = await (await client.post("/request", json=with_cookie)).json()
        assert sticky["version"] == "v2" and "responseHeaders" not in sticky
