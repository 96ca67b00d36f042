"""The mesh simulator routes by the Envoy configuration istiod generated, as Envoy would.

The fixtures in tests/unit/fixtures/istiod are lines of ``istio-xds-routes``, captured from
istiod (Istio 1.31 development snapshot) on the local control plane and trimmed to one
namespace; their README shows the Istio objects istiod translated.
"""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path
from typing import Any

import pytest
from meshsim import envoy_match, envoy_routes, matching
from meshsim.envoy_routes import EnvoyConfig, parse_cluster_name, parse_config, route
from meshsim.matching import Request
from meshsim.mesh import MeshSnapshot, snapshot_from_objects
from meshsim.routing import (
    FLAG_FAULT_ABORT,
    FLAG_NO_CLUSTER,
    FLAG_NO_HEALTHY_UPSTREAM,
    FLAG_NO_ROUTE,
    FLAG_OK,
)

FIXTURES = Path(__file__).parent / "fixtures" / "istiod"
LINUX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
ANDROID_UA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36"


def fixture(name: str) -> EnvoyConfig:
    return parse_config(json.loads((FIXTURES / f"{name}.json").read_text()))


def deployment(app: str, version: str, *, namespace: str, ready: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{app}-{version}", "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": {"app": app, "version": version}}}},
        "status": {"readyReplicas": ready},
    }


def service(name: str, *ports: int, namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": p} for p in ports]},
    }


BOOKINFO = snapshot_from_objects(
    services=[service("reviews", 9080, namespace="bookinfo")],
    deployments=[deployment("reviews", v, namespace="bookinfo") for v in ("v1", "v2")],
)
SHOP = snapshot_from_objects(
    services=[service("shop", 8080, 9090, 5432, namespace="shop")],
    deployments=[
        deployment("shop", "v1", namespace="shop", ready=2),
        deployment("shop", "v2", namespace="shop"),
    ],
)
MATCHES = fixture("bookinfo-match-fault-mirror")
MISSING = fixture("bookinfo-missing-subsets")
MULTI_PORT = fixture("shop-multi-port")


def request(**fields: Any) -> Request:
    return Request(**{"host": "reviews", "namespace": "bookinfo", "port": 9080, **fields})


def versions(
    config: EnvoyConfig, n: int, snapshot: MeshSnapshot = BOOKINFO, seed: int = 3, **fields: Any
) -> collections.Counter[str | None]:
    rng = random.Random(seed)
    counts: collections.Counter[str | None] = collections.Counter()
    for _ in range(n):
        decision = route(request(**fields), snapshot, config, rng=rng)
        counts[decision.destination.version if decision.destination else None] += 1
    return counts


def within(count: int, *, n: int, p: float) -> bool:
    """Within 4 standard deviations of Binomial(n, p)."""
    return bool(abs(count - n * p) < 4 * (n * p * (1 - p)) ** 0.5)


class TestTheCapturedConfiguration:
    def test_route_configurations_are_named_after_ports_and_clusters_carry_endpoints(self) -> None:
        assert sorted(MULTI_PORT.route_configs) == ["8080", "9090"]  # TCP 5432 has no RDS
        v1 = MULTI_PORT.clusters["outbound|8080|v1|shop.shop.svc.cluster.local"]
        assert [e.workload_name for e in v1.healthy_endpoints] == ["shop-v1", "shop-v1"]

    def test_a_cluster_name_is_direction_port_subset_and_host(self) -> None:
        assert parse_cluster_name("outbound|9080|v2|reviews.bookinfo.svc.cluster.local") == (
            envoy_routes.ClusterName("outbound", 9080, "v2", "reviews.bookinfo.svc.cluster.local")
        )
        assert parse_cluster_name("outbound|9080||reviews.x").subset is None
        assert parse_cluster_name("PassthroughCluster").port is None


class TestVirtualHosts:
    @pytest.mark.parametrize(
        "host",
        ["reviews", "reviews.bookinfo", "reviews.bookinfo.svc.cluster.local", "reviews:9080"],
    )
    def test_short_and_full_names_and_a_port_in_the_authority_reach_one_virtual_host(
        self, host: str
    ) -> None:
        vhost = MATCHES.virtual_host(host=host, port=9080)
        assert vhost is not None and vhost["name"] == "reviews.bookinfo.svc.cluster.local:9080"

    def test_a_short_name_of_another_namespace_is_not_a_domain_of_its_virtual_host(self) -> None:
        assert MATCHES.virtual_host(host="reviews.elsewhere", port=9080) is not None
        vhost = MATCHES.virtual_host(host="reviews", port=9080)
        assert vhost is not None and "elsewhere" not in vhost["name"]

    def test_an_unknown_host_falls_into_allow_any_which_the_simulator_answers_404(self) -> None:
        vhost = MATCHES.virtual_host(host="unknown.example", port=9080)
        assert vhost is not None and vhost["name"] == "allow_any"
        snapshot = snapshot_from_objects(
            services=[service("unknown", 9080, namespace="bookinfo")], deployments=[]
        )
        decision = route(request(host="unknown"), snapshot, MATCHES, rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_NO_ROUTE, 404)

    def test_without_a_configuration_for_the_client_namespace_nothing_is_routed(self) -> None:
        decision = route(request(), BOOKINFO, None, rng=random.Random(0))
        assert decision.flag == FLAG_NO_ROUTE


class TestWeightsAndMirrors:
    def test_the_weighted_clusters_split_requests_70_30(self) -> None:
        counts = versions(MATCHES, 2000)
        assert set(counts) == {"v1", "v2"}
        assert within(counts["v2"], n=2000, p=0.3)

    def test_the_mirror_policy_copies_its_runtime_fraction_to_v2(self) -> None:
        rng = random.Random(5)
        decisions = [route(request(), BOOKINFO, MATCHES, rng=rng) for _ in range(2000)]
        mirrored = sum(1 for d in decisions if [m.version for m in d.served_mirrors] == ["v2"])
        assert within(mirrored, n=2000, p=0.4)

    def test_a_decision_names_the_virtual_service_and_the_route_that_matched(self) -> None:
        decision = route(request(), BOOKINFO, MATCHES, rng=random.Random(0))
        assert (decision.flag, decision.virtual_service, decision.route_index) == (
            FLAG_OK,
            "bookinfo/reviews",
            3,
        )
        assert decision.destination is not None
        assert decision.destination.workload is not None
        assert decision.destination.workload.name in ("reviews-v1", "reviews-v2")


class TestRequestContent:
    def test_a_header_and_a_uri_prefix_in_one_match_must_both_hold(self) -> None:
        assert versions(MATCHES, 50, headers={"end-user": "jason"}, path="/api/x") == {"v2": 50}
        elsewhere = versions(MATCHES, 400, headers={"end-user": "jason"}, path="/other")
        assert set(elsewhere) == {"v1", "v2"}

    def test_the_cookie_regex_finds_one_cookie_among_several(self) -> None:
        assert versions(MATCHES, 50, headers={"cookie": "a=1;canary=yes;b=2"}) == {"v2": 50}
        assert set(versions(MATCHES, 400, headers={"cookie": "xcanary=yes"})) == {"v1", "v2"}

    def test_a_linux_agent_reaches_v2_and_an_android_one_does_not(self) -> None:
        assert set(versions(MATCHES, 200, headers={"user-agent": LINUX_UA})) <= {"v2", None}
        assert set(versions(MATCHES, 400, headers={"user-agent": ANDROID_UA})) == {"v1", "v2"}

    def test_istiods_without_headers_matches_a_missing_header_unlike_the_virtual_service_reader(
        self,
    ) -> None:
        # istiod translates withoutHeaders into invert_match with treat_missing_header_as_empty
        # (istio/istio#50988): a request without a User-Agent is "not Android". The simulator's
        # own reading of the VirtualService says the opposite; istiod's output is what Envoy runs.
        vhost = MATCHES.virtual_host(host="reviews", port=9080)
        assert vhost is not None
        android = vhost["routes"][2]["match"]["headers"][1]
        assert android["invertMatch"] and android["treatMissingHeaderAsEmpty"]
        bare = request(headers={})
        assert envoy_match.header_matches(android, bare)
        without = {"user-agent": {"regex": ".*Android.*"}}
        assert not matching.matches_request({"withoutHeaders": without}, bare)

    @pytest.mark.parametrize(
        ("fields", "index"),
        [
            ({"path": "/?beta=1"}, 2),
            ({"path": "/reviews/beta?x=1"}, 3),  # path ignores the query string
            ({"path": "/reviews/42"}, 4),
            ({"path": "/reviews/42a"}, 8),  # regexes match the whole path
            ({"path": "/api/v2/list"}, 5),  # ignoreUriCase -> case_sensitive: false
            ({"headers": {"x-group": "beta-testers"}}, 6),
            ({"method": "POST"}, 7),
            ({}, 8),
        ],
    )
    def test_each_translated_match_of_one_http_route_is_its_own_envoy_route(
        self, fields: dict[str, Any], index: int
    ) -> None:
        decision = route(request(**fields), BOOKINFO, MISSING, rng=random.Random(0))
        assert (decision.flag, decision.route_index) == (FLAG_OK, index)


class TestFailures:
    def test_a_route_to_a_subset_no_destination_rule_defines_answers_503_no_cluster(self) -> None:
        decision = route(request(headers={"x-v3": "yes"}), BOOKINFO, MISSING, rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_NO_CLUSTER, 503)

    def test_a_subset_without_endpoints_answers_503_no_healthy_upstream(self) -> None:
        decision = route(request(headers={"x-v2": ""}), BOOKINFO, MISSING, rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_NO_HEALTHY_UPSTREAM, 503)

    def test_the_fault_filter_config_aborts_5_and_delays_10_percent(self) -> None:
        rng = random.Random(11)
        decisions = [
            route(request(headers={"user-agent": LINUX_UA}), BOOKINFO, MATCHES, rng=rng)
            for _ in range(2000)
        ]
        aborted = [d for d in decisions if d.flag == FLAG_FAULT_ABORT]
        assert within(len(aborted), n=2000, p=0.05)
        assert {d.status_code for d in aborted} == {503}
        delayed = [d for d in decisions if d.delay_ms]
        assert {d.delay_ms for d in delayed} == {1500.0}
        assert within(len(delayed), n=2000, p=0.1)


class TestMultiPort:
    @pytest.mark.parametrize(("port", "share"), [(8080, 0.2), (9090, 0.5)])
    def test_each_port_has_its_own_split_and_stays_on_its_port(self, port: int, share: float) -> None:
        rng = random.Random(2)
        decisions = [
            route(request(host="shop", namespace="shop", port=port), SHOP, MULTI_PORT, rng=rng)
            for _ in range(2000)
        ]
        assert {d.destination.port for d in decisions if d.destination} == {port}
        v2 = sum(1 for d in decisions if d.destination and d.destination.version == "v2")
        assert within(v2, n=2000, p=share)

    def test_a_tcp_port_is_routed_in_its_listener_not_in_rds(self) -> None:
        assert [(t.listener, t.port, t.clusters) for t in MULTI_PORT.tcp_routes] == [
            ("10.0.0.126_5432", 5432, (("outbound|5432|v1|shop.shop.svc.cluster.local", 100),))
        ]

    def test_a_tcp_port_has_no_http_route(self) -> None:
        decision = route(
            request(host="shop", namespace="shop", port=5432), SHOP, MULTI_PORT, rng=random.Random(0)
        )
        assert decision.flag == FLAG_NO_ROUTE

    def test_without_a_port_the_first_port_of_the_service_is_used(self) -> None:
        decision = route(
            request(host="shop", namespace="shop", port=None), SHOP, MULTI_PORT, rng=random.Random(0)
        )
        assert decision.destination is not None and decision.destination.port == 8080


class TestEnvoyMatchers:
    def test_a_missing_header_matches_only_an_inverted_present_match(self) -> None:
        bare = request(headers={})
        assert envoy_match.header_matches({"name": "x", "presentMatch": True, "invertMatch": True}, bare)
        assert not envoy_match.header_matches({"name": "x", "presentMatch": True}, bare)
        inverted_exact = {"name": "x", "stringMatch": {"exact": "a"}, "invertMatch": True}
        assert not envoy_match.header_matches(inverted_exact, bare)

    @pytest.mark.parametrize(
        ("matcher", "value", "expected"),
        [
            ({"exact": "Jason", "ignoreCase": True}, "jason", True),
            ({"prefix": "beta"}, "beta-1", True),
            ({"suffix": "-rc"}, "1.2-rc", True),
            ({"contains": "canary"}, "a-canary-b", True),
            ({"safeRegex": {"regex": "rc-[0-9]+"}}, "rc-12-x", False),
            ({"safeRegex": {"regex": "(unclosed"}}, "(unclosed", False),
        ],
    )
    def test_string_matchers(self, matcher: dict[str, Any], value: str, expected: bool) -> None:
        assert envoy_match.string_matcher_matches(matcher, value) is expected

    def test_a_match_field_the_simulator_does_not_know_never_matches(self) -> None:
        assert not envoy_match.route_matches({"prefix": "/", "grpc": {}}, request())

    def test_a_path_separated_prefix_needs_a_slash_or_the_end_after_it(self) -> None:
        match = {"pathSeparatedPrefix": "/api"}
        assert envoy_match.route_matches(match, request(path="/api/x"))
        assert envoy_match.route_matches(match, request(path="/api?q=1"))
        assert not envoy_match.route_matches(match, request(path="/apix"))
