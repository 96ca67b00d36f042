"""The mesh simulator's routing engine routes requests the way Istio's sidecars would."""

from __future__ import annotations

import collections
import random
import subprocess
import sys
from typing import Any

import pytest
import yaml
from meshsim.matching import Request
from meshsim.mesh import MeshSnapshot, snapshot_from_objects
from meshsim.routing import (
    FLAG_FAULT_ABORT,
    FLAG_NO_HEALTHY_UPSTREAM,
    FLAG_NO_ROUTE,
    FLAG_OK,
    route,
)

SERVICE = yaml.safe_load(
    """
metadata: {name: reviews, namespace: bookinfo}
spec: {selector: {app: reviews}, ports: [{port: 9080}]}
"""
)

DESTINATION_RULE = yaml.safe_load(
    """
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
    - {name: v3, labels: {version: v3}}
"""
)


def deployment(version: str, *, ready: int = 1, namespace: str = "bookinfo") -> dict[str, Any]:
    labels = {"app": "reviews", "version": version}
    return {
        "metadata": {"name": f"reviews-{version}", "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": labels}}},
        "status": {"readyReplicas": ready},
    }


def virtual_service(http: str, *, name: str = "reviews", created: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "bookinfo", "creationTimestamp": created},
        "spec": {"hosts": ["reviews"], "http": yaml.safe_load(http)},
    }


def mesh(
    http: str | None = None,
    *,
    ready: dict[str, int] | None = None,
    extra_services: tuple[dict[str, Any], ...] = (),
) -> MeshSnapshot:
    ready = ready if ready is not None else {"v1": 1, "v2": 1, "v3": 1}
    return snapshot_from_objects(
        virtual_services=[virtual_service(http)] if http is not None else [],
        destination_rules=[DESTINATION_RULE],
        services=[SERVICE, *extra_services],
        deployments=[deployment(version, ready=n) for version, n in ready.items()],
    )


def request(**overrides: Any) -> Request:
    fields: dict[str, Any] = {"host": "reviews", "namespace": "bookinfo", "port": 9080}
    fields.update(overrides)
    return Request(**fields)


def version_of(snapshot: MeshSnapshot, req: Request | None = None, seed: int = 0) -> str | None:
    decision = route(req or request(), snapshot, rng=random.Random(seed))
    return decision.destination.version if decision.destination else None


def versions_over(snapshot: MeshSnapshot, n: int, req: Request | None = None) -> dict[str, int]:
    rng = random.Random(7)
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        decision = route(req or request(), snapshot, rng=rng)
        counts[(decision.destination.version if decision.destination else None) or "none"] += 1
    return dict(counts)


ONLY_V2 = """
- route: [{destination: {host: reviews, subset: v2}}]
"""

JASON_TO_V2 = """
- match: [{headers: {end-user: {exact: jason}}}]
  route: [{destination: {host: reviews, subset: v2}}]
- route: [{destination: {host: reviews, subset: v1}}]
"""


class TestWithoutVirtualService:
    def test_requests_spread_over_every_ready_version_behind_the_service(self) -> None:
        counts = versions_over(mesh(), 3000)
        assert set(counts) == {"v1", "v2", "v3"}
        assert all(800 < n < 1200 for n in counts.values())

    def test_versions_without_ready_pods_get_no_requests(self) -> None:
        counts = versions_over(mesh(ready={"v1": 1, "v2": 0, "v3": 0}), 200)
        assert counts == {"v1": 200}

    def test_a_service_with_no_ready_pod_answers_503_no_healthy_upstream(self) -> None:
        decision = route(request(), mesh(ready={"v1": 0}), rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_NO_HEALTHY_UPSTREAM, 503)

    def test_an_unknown_host_answers_404_no_route(self) -> None:
        decision = route(request(host="ratings"), mesh(), rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_NO_ROUTE, 404)

    def test_a_port_the_service_does_not_expose_has_no_route(self) -> None:
        decision = route(request(port=8080), mesh(), rng=random.Random(0))
        assert decision.flag == FLAG_NO_ROUTE


class TestHostNames:
    @pytest.mark.parametrize(
        "host", ["reviews", "reviews.bookinfo", "reviews.bookinfo.svc.cluster.local"]
    )
    def test_short_and_full_host_names_reach_the_same_virtual_service(self, host: str) -> None:
        assert version_of(mesh(ONLY_V2), request(host=host)) == "v2"

    def test_a_short_name_from_another_namespace_is_a_different_host(self) -> None:
        decision = route(request(namespace="other"), mesh(ONLY_V2), rng=random.Random(0))
        assert decision.flag == FLAG_NO_ROUTE

    def test_a_virtual_service_bound_only_to_a_gateway_does_not_route_mesh_traffic(self) -> None:
        gateway_only = virtual_service(ONLY_V2)
        gateway_only["spec"]["gateways"] = ["bookinfo-gateway"]
        snapshot = snapshot_from_objects(
            virtual_services=[gateway_only],
            destination_rules=[DESTINATION_RULE],
            services=[SERVICE],
            deployments=[deployment("v1", ready=1)],
        )
        assert version_of(snapshot) == "v1"

    def test_the_oldest_virtual_service_for_a_host_wins(self) -> None:
        snapshot = snapshot_from_objects(
            virtual_services=[
                virtual_service(JASON_TO_V2, name="newer", created="2024-02-01T00:00:00Z"),
                virtual_service(ONLY_V2, name="older", created="2024-01-01T00:00:00Z"),
            ],
            destination_rules=[DESTINATION_RULE],
            services=[SERVICE],
            deployments=[deployment("v1"), deployment("v2")],
        )
        decision = route(request(), snapshot, rng=random.Random(0))
        assert decision.virtual_service == "bookinfo/older"


class TestRouteOrder:
    def test_the_first_matching_route_wins(self) -> None:
        http = """
        - match: [{uri: {prefix: /}}]
          route: [{destination: {host: reviews, subset: v3}}]
        - match: [{headers: {end-user: {exact: jason}}}]
          route: [{destination: {host: reviews, subset: v2}}]
        """
        assert version_of(mesh(http), request(headers={"end-user": "jason"})) == "v3"

    def test_a_request_that_no_route_matches_answers_404_no_route(self) -> None:
        http = """
        - match: [{headers: {end-user: {exact: jason}}}]
          route: [{destination: {host: reviews, subset: v2}}]
        """
        decision = route(request(), mesh(http), rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_NO_ROUTE, 404)
        assert decision.virtual_service == "bookinfo/reviews"

    def test_a_route_without_match_catches_everything_after_the_matching_ones(self) -> None:
        assert version_of(mesh(JASON_TO_V2), request(headers={"end-user": "jason"})) == "v2"
        assert version_of(mesh(JASON_TO_V2), request(headers={"end-user": "alice"})) == "v1"
        assert version_of(mesh(JASON_TO_V2)) == "v1"


def routed_to_v2(match: str, req: Request) -> bool:
    http = f"""
    - match: {match}
      route: [{{destination: {{host: reviews, subset: v2}}}}]
    - route: [{{destination: {{host: reviews, subset: v1}}}}]
    """
    return version_of(mesh(http), req) == "v2"


class TestMatchConditions:
    @pytest.mark.parametrize(
        ("string_match", "value", "expected"),
        [
            ("{exact: jason}", "jason", True),
            ("{exact: jason}", "jason2", False),
            ("{exact: jason}", "Jason", False),
            ("{prefix: ja}", "jason", True),
            ("{prefix: ja}", "bjason", False),
            ("{regex: 'j.*n'}", "jason", True),
            ("{regex: 'j.*n'}", "jasons", False),  # RE2 must match the whole value
            ("{regex: 'ason'}", "jason", False),
            ("{}", "anything", True),  # presence only
            ("{regex: '*'}", "anything", True),  # Istio's spelling of presence
        ],
    )
    def test_header_string_matches_behave_like_envoy(
        self, string_match: str, value: str, expected: bool
    ) -> None:
        match = f"[{{headers: {{end-user: {string_match}}}}}]"
        assert routed_to_v2(match, request(headers={"end-user": value})) is expected

    def test_header_names_are_matched_without_regard_to_case(self) -> None:
        assert routed_to_v2(
            "[{headers: {end-user: {exact: jason}}}]", request(headers={"End-User": "jason"})
        )

    def test_a_header_condition_never_matches_a_request_without_that_header(self) -> None:
        assert not routed_to_v2("[{headers: {end-user: {}}}]", request())
        assert not routed_to_v2("[{headers: {end-user: {prefix: ''}}}]", request())

    def test_a_regex_that_re2_refuses_never_matches(self) -> None:
        match = "[{headers: {end-user: {regex: '(?=jason)jason'}}}]"
        assert not routed_to_v2(match, request(headers={"end-user": "jason"}))

    def test_conditions_inside_one_match_entry_must_all_hold(self) -> None:
        match = "[{headers: {end-user: {exact: jason}}, uri: {prefix: /api}}]"
        assert routed_to_v2(match, request(headers={"end-user": "jason"}, path="/api/x"))
        assert not routed_to_v2(match, request(headers={"end-user": "jason"}, path="/web"))
        assert not routed_to_v2(match, request(path="/api/x"))

    def test_any_one_match_entry_is_enough(self) -> None:
        match = "[{headers: {end-user: {exact: jason}}}, {uri: {prefix: /api}}]"
        assert routed_to_v2(match, request(headers={"end-user": "jason"}, path="/web"))
        assert routed_to_v2(match, request(path="/api/x"))
        assert not routed_to_v2(match, request(path="/web"))

    @pytest.mark.parametrize(
        ("uri", "path", "expected"),
        [
            ("{exact: /reviews}", "/reviews", True),
            ("{exact: /reviews}", "/reviews?id=1", True),  # the query string is not the path
            ("{exact: /reviews}", "/reviews/1", False),
            ("{prefix: /reviews}", "/reviews/1", True),
            ("{prefix: /reviews}", "/ratings", False),
            ("{regex: '/reviews/[0-9]+'}", "/reviews/12", True),
            ("{regex: '/reviews/[0-9]+'}", "/reviews/12/x", False),
            ("{regex: '/reviews/[0-9]+'}", "/reviews/12?x=1", True),
        ],
    )
    def test_uri_matches_look_at_the_path(self, uri: str, path: str, expected: bool) -> None:
        assert routed_to_v2(f"[{{uri: {uri}}}]", request(path=path)) is expected

    def test_ignore_uri_case_folds_exact_and_prefix_matches(self) -> None:
        assert not routed_to_v2("[{uri: {prefix: /API}}]", request(path="/api/v2"))
        assert routed_to_v2("[{uri: {prefix: /API}, ignoreUriCase: true}]", request(path="/api/v2"))

    def test_a_port_match_selects_requests_to_that_port_only(self) -> None:
        service = yaml.safe_load(
            """
            metadata: {name: reviews, namespace: bookinfo}
            spec: {selector: {app: reviews}, ports: [{port: 9080}, {port: 9090}]}
            """
        )
        http = """
        - match: [{port: 9090}]
          route: [{destination: {host: reviews, subset: v2, port: {number: 9090}}}]
        - route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}}]
        """
        snapshot = snapshot_from_objects(
            virtual_services=[virtual_service(http)],
            destination_rules=[DESTINATION_RULE],
            services=[service],
            deployments=[deployment("v1"), deployment("v2")],
        )
        on_9090 = route(request(port=9090), snapshot, rng=random.Random(0)).destination
        on_9080 = route(request(port=9080), snapshot, rng=random.Random(0)).destination
        assert on_9090 is not None and (on_9090.version, on_9090.port) == ("v2", 9090)
        assert on_9080 is not None and (on_9080.version, on_9080.port) == ("v1", 9080)

    def test_query_parameters_can_be_matched(self) -> None:
        match = "[{queryParams: {canary: {exact: 'true'}}}]"
        assert routed_to_v2(match, request(path="/r?canary=true"))
        assert not routed_to_v2(match, request(path="/r?canary=false"))

    def test_one_cookie_among_several_matches_with_a_cookie_header_regex(self) -> None:
        match = r"""[{headers: {cookie: {regex: '^(.*?;\s*)?canary=yes(;.*)?$'}}}]"""
        assert routed_to_v2(match, request(headers={"cookie": "a=1; canary=yes; b=2"}))
        assert routed_to_v2(match, request(headers={"cookie": "canary=yes"}))
        assert not routed_to_v2(match, request(headers={"cookie": "a=1; canary=yes2"}))
        assert not routed_to_v2(match, request(headers={"cookie": "nocanary=yes"}))


ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile"
DESKTOP_LINUX = "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"


class TestWithoutHeaders:
    LINUX_NOT_ANDROID = """[{
        headers: {user-agent: {regex: '.*Linux.*'}},
        withoutHeaders: {user-agent: {regex: '.*Android.*'}}
    }]"""

    def test_without_headers_excludes_requests_whose_header_matches(self) -> None:
        assert routed_to_v2(self.LINUX_NOT_ANDROID, request(headers={"user-agent": DESKTOP_LINUX}))
        assert not routed_to_v2(self.LINUX_NOT_ANDROID, request(headers={"user-agent": ANDROID}))

    def test_without_headers_does_not_match_a_request_missing_the_header(self) -> None:
        # Envoy's invert_match needs the header present (istio/istio#50988).
        assert not routed_to_v2("[{withoutHeaders: {end-user: {exact: jason}}}]", request())
        assert routed_to_v2(
            "[{withoutHeaders: {end-user: {exact: jason}}}]", request(headers={"end-user": "bob"})
        )

    def test_without_headers_with_an_empty_match_selects_requests_lacking_the_header(self) -> None:
        assert routed_to_v2("[{withoutHeaders: {end-user: {}}}]", request())
        assert not routed_to_v2(
            "[{withoutHeaders: {end-user: {}}}]", request(headers={"end-user": "x"})
        )


class TestWeights:
    SPLIT_80_20 = """
    - route:
        - {destination: {host: reviews, subset: v1}, weight: 80}
        - {destination: {host: reviews, subset: v2}, weight: 20}
    """

    def test_weighted_destinations_converge_to_their_weights(self) -> None:
        n = 10_000
        counts = versions_over(mesh(self.SPLIT_80_20), n)
        # 4 standard deviations of a binomial(n, 0.2): fails by chance about once in 16,000 runs
        sigma = (n * 0.2 * 0.8) ** 0.5
        assert abs(counts["v2"] - 0.2 * n) < 4 * sigma
        assert counts["v1"] + counts["v2"] == n

    def test_the_same_seed_routes_the_same_sequence(self) -> None:
        def sequence() -> list[str | None]:
            rng = random.Random(42)
            snapshot = mesh(self.SPLIT_80_20)
            decisions = [route(request(), snapshot, rng=rng) for _ in range(50)]
            return [d.destination.version if d.destination else None for d in decisions]

        assert sequence() == sequence()

    def test_a_zero_weight_destination_gets_no_traffic(self) -> None:
        http = """
        - route:
            - {destination: {host: reviews, subset: v1}, weight: 100}
            - {destination: {host: reviews, subset: v2}, weight: 0}
        """
        assert versions_over(mesh(http), 500) == {"v1": 500}

    def test_a_weight_on_a_subset_without_ready_pods_gives_503_and_no_failover(self) -> None:
        snapshot, rng = mesh(self.SPLIT_80_20, ready={"v1": 1, "v2": 0}), random.Random(3)
        flags = collections.Counter(route(request(), snapshot, rng=rng).flag for _ in range(2000))
        assert flags[FLAG_NO_HEALTHY_UPSTREAM] > 300
        assert flags[FLAG_OK] > 1400


class TestUnhealthyDestinations:
    def test_a_subset_missing_from_the_destination_rule_answers_503(self) -> None:
        http = "- route: [{destination: {host: reviews, subset: v9}}]"
        decision = route(request(), mesh(http), rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_NO_HEALTHY_UPSTREAM, 503)
        assert decision.destination is not None and decision.destination.subset == "v9"

    def test_a_subset_whose_deployment_has_no_ready_pod_answers_503(self) -> None:
        decision = route(request(), mesh(ONLY_V2, ready={"v1": 1, "v2": 0}), rng=random.Random(0))
        assert decision.flag == FLAG_NO_HEALTHY_UPSTREAM

    def test_a_destination_host_that_is_no_service_answers_503(self) -> None:
        http = "- route: [{destination: {host: nowhere}}]"
        decision = route(request(), mesh(http), rng=random.Random(0))
        assert decision.flag == FLAG_NO_HEALTHY_UPSTREAM

    def test_a_destination_without_subset_spreads_over_the_service(self) -> None:
        http = "- route: [{destination: {host: reviews}}]"
        assert set(versions_over(mesh(http), 300)) == {"v1", "v2", "v3"}


class TestMirroring:
    def mirrored(self, http: str, n: int, **mesh_args: Any) -> tuple[dict[str, int], int]:
        rng = random.Random(11)
        snapshot = mesh(http, **mesh_args)
        served: collections.Counter[str] = collections.Counter()
        copies = 0
        for _ in range(n):
            decision = route(request(), snapshot, rng=rng)
            assert decision.destination is not None and decision.destination.version
            served[decision.destination.version] += 1
            copies += sum(1 for m in decision.served_mirrors if m.version == "v2")
        return dict(served), copies

    def test_every_request_is_copied_to_the_mirror_while_the_route_answers(self) -> None:
        http = """
        - route: [{destination: {host: reviews, subset: v1}}]
          mirror: {host: reviews, subset: v2}
        """
        assert self.mirrored(http, 200) == ({"v1": 200}, 200)

    def test_mirror_percentage_copies_that_share_of_requests(self) -> None:
        http = """
        - route: [{destination: {host: reviews, subset: v1}}]
          mirror: {host: reviews, subset: v2}
          mirrorPercentage: {value: 25.0}
        """
        served, copies = self.mirrored(http, 4000)
        assert served == {"v1": 4000}
        assert abs(copies - 1000) < 4 * (4000 * 0.25 * 0.75) ** 0.5

    def test_the_mirrors_list_is_honoured_too(self) -> None:
        http = """
        - route: [{destination: {host: reviews, subset: v1}}]
          mirrors: [{destination: {host: reviews, subset: v2}, percentage: {value: 100}}]
        """
        assert self.mirrored(http, 50) == ({"v1": 50}, 50)

    def test_copies_to_a_mirror_without_ready_pods_vanish(self) -> None:
        http = """
        - route: [{destination: {host: reviews, subset: v1}}]
          mirror: {host: reviews, subset: v2}
        """
        assert self.mirrored(http, 50, ready={"v1": 1, "v2": 0}) == ({"v1": 50}, 0)


class TestFaultInjection:
    def test_an_abort_fault_answers_its_status_without_reaching_a_pod(self) -> None:
        http = """
        - route: [{destination: {host: reviews, subset: v1}}]
          mirror: {host: reviews, subset: v2}
          fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
        """
        decision = route(request(), mesh(http), rng=random.Random(0))
        assert (decision.flag, decision.status_code) == (FLAG_FAULT_ABORT, 418)
        assert decision.destination is not None and not decision.destination.healthy
        assert decision.mirrors == ()

    def test_an_abort_fault_hits_only_its_percentage_of_requests(self) -> None:
        http = """
        - route: [{destination: {host: reviews, subset: v1}}]
          fault: {abort: {httpStatus: 503, percentage: {value: 30}}}
        """
        snapshot, rng = mesh(http), random.Random(4)
        flags = collections.Counter(route(request(), snapshot, rng=rng).flag for _ in range(4000))
        assert abs(flags[FLAG_FAULT_ABORT] - 1200) < 4 * (4000 * 0.3 * 0.7) ** 0.5

    @pytest.mark.parametrize(("text", "ms"), [("5s", 5000), ("100ms", 100), ("1m30s", 90000)])
    def test_a_delay_fault_adds_its_fixed_delay(self, text: str, ms: float) -> None:
        http = f"""
        - route: [{{destination: {{host: reviews, subset: v1}}}}]
          fault: {{delay: {{fixedDelay: "{text}"}}}}
        """
        decision = route(request(), mesh(http), rng=random.Random(0))
        assert (decision.flag, decision.delay_ms) == (FLAG_OK, ms)


def test_the_routing_engine_is_pure_and_imports_no_client_library() -> None:
    code = (
        "import sys, meshsim.routing, meshsim.traffic, meshsim.envoy_routes\n"
        "found = {'kubernetes', 'aiohttp', 'prometheus_client'} & set(sys.modules)\n"
        "print(sorted(found))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
