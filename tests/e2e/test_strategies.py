"""Every grayscale strategy on the local control plane, proven by istiod's routes and requests.

The API server stores each VirtualService only if it passes Istio's schema and istiod's
webhook; istiod translates it into the Envoy routes a sidecar would run, and the tests assert
on those (``assert_istiod_routes_say_status``: they say what the release's status says). The
mesh simulator routes the requests by the same istiod output, so these tests check where
requests land, not only what the operator meant to write. Where the simulator's own reading
of a VirtualService and istiod's translation could disagree (``withoutHeaders`` on a request
without that header, for one), istiod's is what is routed and asserted.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from typing import Any, Self

import pytest
from devcluster import Cluster
from meshsim.routers import EnvoyRouter
from meshsim.simulator import Simulator

from tests.e2e.helpers import (
    assert_routing_invariants,
    example_release,
    get,
    patch_spec,
    release_phase,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import (
    assert_istiod_routes_say_status,
    host_routes,
)
from tests.e2e.releases import ReleaseStarter

# Every state these releases pass through is checked (tests/invariants).
pytestmark = pytest.mark.usefixtures("invariant_monitor")

REVIEWS = "reviews.{ns}.svc.cluster.local"

WINDOWS_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)
MACOS_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
LINUX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
)


def _weights(cluster: Cluster, ns: str) -> list[dict[str, int]]:
    vs = get(cluster, "virtualservice", "reviews", ns)
    return route_weights(vs) if vs else []


def _routed(mesh: Simulator, cluster: Cluster, ns: str) -> dict[str, Any]:
    """The stored VirtualService, once istiod's routes say what the status says and the
    simulator routes by them."""
    assert_istiod_routes_say_status(cluster, ns, mesh=mesh)
    mesh.refresh()  # and by the Deployments as they are now
    vs = get(cluster, "virtualservice", "reviews", ns)
    assert vs is not None
    return vs


def _envoy_matches(mesh: Simulator, ns: str) -> list[tuple[str, dict[str, Any]]]:
    """(route name, RouteMatch) of istiod's routes for reviews on 9080, as the simulator has them."""
    assert isinstance(mesh.router, EnvoyRouter)
    config = mesh.router.config(ns)
    assert config is not None
    routes = host_routes(config, host=REVIEWS.format(ns=ns), port=9080) or []
    return [(r.name, r.match) for r in routes]


def _start(
    progressing_release: ReleaseStarter, mesh: Simulator, release: dict[str, Any]
) -> dict[str, Any]:
    """Bookinfo, the operator and ``release``; returns the VirtualService once it is in force."""
    cluster, ns = progressing_release.cluster, progressing_release.namespace
    progressing_release(release)
    wait_for(
        lambda: (get(cluster, "deployment", "reviews-v2", ns) or {}).get("status", {}).get("readyReplicas"),
        what="reviews-v2 ready",
    )
    assert_routing_invariants(cluster, ns, "reviews")
    return _routed(mesh, cluster, ns)


def _served(
    mesh: Simulator, ns: str, *, headers: Mapping[str, str] | None = None, path: str = "/", n: int = 20
) -> collections.Counter[str | None]:
    """Which versions answered ``n`` identical requests (every one must succeed)."""
    counts: collections.Counter[str | None] = collections.Counter()
    for _ in range(n):
        outcome = mesh.request(host="reviews", namespace=ns, port=9080, path=path, headers=headers)
        assert outcome.code == 200, outcome
        counts[outcome.version] += 1
    return counts


def _only(version: str, n: int = 20) -> collections.Counter[str | None]:
    return collections.Counter({version: n})


# -- canary by request content ----------------------------------------------------------------


def test_header_rules_always_reach_the_canary_while_other_requests_follow_the_weight(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    match = [
        {"headers": {"end-user": {"exact": "jason"}}},
        {"headers": {"x-group": {"prefix": "beta"}}},
        {"headers": {"x-build": {"regex": "rc-[0-9]+"}}},
    ]
    vs = _start(progressing_release, mesh, example_release(traffic={"weight": 0, "match": match}))
    assert [r["name"] for r in vs["spec"]["http"]] == [
        "istio-canary-reviews-9080-match-0",
        "istio-canary-reviews-9080-match-1",
        "istio-canary-reviews-9080-match-2",
        "istio-canary-reviews-9080-weighted",
    ]
    # istiod kept the order and turned each rule into one Envoy header matcher.
    envoy = _envoy_matches(mesh, ns)
    assert [name for name, _ in envoy] == [r["name"] for r in vs["spec"]["http"]]
    assert [m.get("headers") for _, m in envoy[:3]] == [
        [{"name": "end-user", "stringMatch": {"exact": "jason"}}],
        [{"name": "x-group", "stringMatch": {"prefix": "beta"}}],
        [{"name": "x-build", "stringMatch": {"safeRegex": {"regex": "rc-[0-9]+"}}}],
    ]

    assert _served(mesh, ns, headers={"end-user": "jason"}) == _only("v2")
    assert _served(mesh, ns, headers={"x-group": "beta-testers"}) == _only("v2")
    assert _served(mesh, ns, headers={"x-build": "rc-12"}) == _only("v2")
    # Near misses follow the weight, which is 0: stable answers.
    assert _served(mesh, ns, headers={"end-user": "jasonx"}) == _only("v1")
    assert _served(mesh, ns, headers={"x-group": "alpha-beta"}) == _only("v1")
    assert _served(mesh, ns, headers={"x-build": "rc-12-hotfix"}) == _only("v1")  # regexes match whole values
    assert _served(mesh, ns) == _only("v1")
    assert_routing_invariants(cluster, ns, "reviews")


def test_conditions_inside_a_rule_are_anded_and_rules_are_ored(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    match = [
        {"headers": {"end-user": {"exact": "jason"}}, "uri": {"prefix": "/api/v2"}},
        {"headers": {"x-canary": {"exact": "always"}}},
    ]
    _start(progressing_release, mesh, example_release(traffic={"weight": 0, "match": match}))

    assert _served(mesh, ns, headers={"end-user": "jason"}, path="/api/v2/reviews") == _only("v2")
    assert _served(mesh, ns, headers={"end-user": "jason"}, path="/api/v1/reviews") == _only("v1")
    assert _served(mesh, ns, headers={"end-user": "bob"}, path="/api/v2/reviews") == _only("v1")
    assert _served(mesh, ns, headers={"x-canary": "always"}, path="/anything") == _only("v2")
    assert_routing_invariants(cluster, ns, "reviews")


def test_cookie_rule_finds_the_cookie_among_several_and_not_a_similar_name(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    match = [{"cookie": {"name": "canary", "value": {"exact": "yes"}}}]
    vs = _start(progressing_release, mesh, example_release(traffic={"weight": 0, "match": match}))
    # One regex over the Cookie header, passed to Envoy as written in the VirtualService.
    cookie = vs["spec"]["http"][0]["match"][0]["headers"]["cookie"]["regex"]
    assert _envoy_matches(mesh, ns)[0][1]["headers"] == [
        {"name": "cookie", "stringMatch": {"safeRegex": {"regex": cookie}}}
    ]

    for cookie in ("canary=yes", "session=abc; canary=yes; theme=dark", "a=1;canary=yes"):
        assert _served(mesh, ns, headers={"cookie": cookie}) == _only("v2"), cookie
    for cookie in ("xcanary=yes", "canary-beta=yes; session=abc", "canary=yesno", "canary=no; other=yes"):
        assert _served(mesh, ns, headers={"cookie": cookie}) == _only("v1"), cookie
    assert_routing_invariants(cluster, ns, "reviews")


def test_uri_rules_send_exact_prefix_and_regex_paths_to_the_canary(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    match = [
        {"uri": {"exact": "/reviews/beta"}},
        {"uri": {"prefix": "/api/v2/"}},
        {"uri": {"regex": "/reviews/[0-9]+"}},
    ]
    _start(progressing_release, mesh, example_release(traffic={"weight": 0, "match": match}))
    # Envoy's path matchers: exact is "path" (query string ignored), prefix sees the whole :path.
    paths = [{k: v for k, v in m.items() if k in ("path", "prefix", "safeRegex")} for _, m in _envoy_matches(mesh, ns)]
    assert paths[:3] == [{"path": "/reviews/beta"}, {"prefix": "/api/v2/"}, {"safeRegex": {"regex": "/reviews/[0-9]+"}}]

    for path in ("/reviews/beta", "/api/v2/reviews", "/reviews/42"):
        assert _served(mesh, ns, path=path) == _only("v2"), path
    for path in ("/reviews/beta/more", "/api/v1/reviews", "/reviews/42a", "/"):
        assert _served(mesh, ns, path=path) == _only("v1"), path
    assert_routing_invariants(cluster, ns, "reviews")


def test_os_rule_reads_the_user_agent_and_linux_excludes_android(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    match = [{"os": ["Windows", "Linux"]}]
    vs = _start(progressing_release, mesh, example_release(traffic={"weight": 0, "match": match}))
    linux = [m for m in vs["spec"]["http"][0]["match"] if "withoutHeaders" in m]
    assert linux and linux[0]["withoutHeaders"] == {"user-agent": {"regex": ".*Android.*"}}
    # istiod's translation of that exclusion: an inverted regex that treats a missing User-Agent
    # as "" (istio/istio#50988). So "not Android" holds without the header, where a reading of
    # the VirtualService alone would say it does not; istiod wins, and the simulator runs this.
    android = {
        "name": "user-agent",
        "stringMatch": {"safeRegex": {"regex": ".*Android.*"}},
        "invertMatch": True,
        "treatMissingHeaderAsEmpty": True,
    }
    assert any(android in (m.get("headers") or []) for _, m in _envoy_matches(mesh, ns))

    assert _served(mesh, ns, headers={"user-agent": WINDOWS_UA}) == _only("v2")
    assert _served(mesh, ns, headers={"user-agent": LINUX_UA}) == _only("v2")
    for agent in (ANDROID_UA, MACOS_UA, IPHONE_UA):
        assert _served(mesh, ns, headers={"user-agent": agent}) == _only("v1"), agent
    assert _served(mesh, ns) == _only("v1")  # no User-Agent at all

    # Only Android: the Linux-based phone now matches, the Linux desktop does not.
    patch_spec(cluster, ns, "reviews", {"traffic": {"match": [{"os": ["Android"]}]}})
    wait_for(
        lambda: "withoutHeaders" not in str((get(cluster, "virtualservice", "reviews", ns) or {}).get("spec")),
        what="Android-only rule",
    )
    _routed(mesh, cluster, ns)
    assert _served(mesh, ns, headers={"user-agent": ANDROID_UA}) == _only("v2")
    assert _served(mesh, ns, headers={"user-agent": LINUX_UA}) == _only("v1")
    assert_routing_invariants(cluster, ns, "reviews")


def test_match_and_weight_combine_matching_to_canary_the_rest_split_by_weight(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    match = [{"headers": {"end-user": {"exact": "jason"}}}]
    _start(progressing_release, mesh, example_release(traffic={"weight": 30, "match": match}))
    assert _weights(cluster, ns) == [{"v2": 100}, {"v1": 70, "v2": 30}]

    assert _served(mesh, ns, headers={"end-user": "jason"}, n=200) == _only("v2", 200)
    rest = _served(mesh, ns, headers={"end-user": "bob"}, n=2000)
    # Binomial(2000, 0.3): the standard deviation is about 20 requests; allow 4 of them.
    assert set(rest) == {"v1", "v2"}
    assert 520 <= rest["v2"] <= 680, rest
    assert_routing_invariants(cluster, ns, "reviews")


def test_canary_match_example_routes_as_its_header_says(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    _start(progressing_release, mesh, example_release("canary-match.yaml"))
    assert _weights(cluster, ns)[-1] == {"v1": 90, "v2": 10}

    assert _served(mesh, ns, headers={"end-user": "jason"}) == _only("v2")
    assert _served(mesh, ns, headers={"cookie": "theme=dark; canary=yes"}) == _only("v2")
    assert _served(mesh, ns, headers={"user-agent": WINDOWS_UA}, path="/reviews/1") == _only("v2")
    # Windows alone is not the rule: off /reviews, the 90/10 split applies.
    elsewhere = _served(mesh, ns, headers={"user-agent": WINDOWS_UA}, path="/health", n=200)
    assert set(elsewhere) == {"v1", "v2"} and elsewhere["v1"] > elsewhere["v2"], elsewhere
    assert_routing_invariants(cluster, ns, "reviews")


# -- blue-green -------------------------------------------------------------------------------


def test_blue_green_switches_all_traffic_at_once_back_and_offline_removes_the_old_version(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    vs = _start(progressing_release, mesh, example_release("blue-green.yaml"))
    assert route_weights(vs) == [{"v1": 100}]
    assert _served(mesh, ns, n=100) == _only("v1", 100)  # the canary runs, with no traffic

    seen: list[list[dict[str, int]]] = []

    def switched(to: str) -> bool:
        weights = _weights(cluster, ns)
        seen.append(weights)
        return weights == [{to: 100}]

    patch_spec(cluster, ns, "reviews", {"takeOver": "v2"})
    wait_for(lambda: switched("v2"), what="switch to v2")
    _routed(mesh, cluster, ns)
    assert _served(mesh, ns, n=100) == _only("v2", 100)
    wait_for(lambda: release_phase(cluster, ns, "reviews", "TakenOver"), what="TakenOver")
    assert get(cluster, "deployment", "reviews-v1", ns) is not None  # kept for the switch back

    patch_spec(cluster, ns, "reviews", {"takeOver": "v1"})
    wait_for(lambda: switched("v1"), what="switch back to v1")
    _routed(mesh, cluster, ns)
    assert _served(mesh, ns, n=100) == _only("v1", 100)
    # All or nothing: no split was ever stored on the way.
    assert all(weights in ([{"v1": 100}], [{"v2": 100}]) for weights in seen), seen

    patch_spec(cluster, ns, "reviews", {"takeOver": "v2", "offline": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), what="Completed")
    assert get(cluster, "deployment", "reviews-v1", ns) is None
    dr = get(cluster, "destinationrule", "reviews", ns)
    assert dr is not None and [s["name"] for s in dr["spec"]["subsets"]] == ["v2"]
    _routed(mesh, cluster, ns)
    assert _served(mesh, ns, n=100) == _only("v2", 100)
    assert_routing_invariants(cluster, ns, "reviews")


# -- mirroring --------------------------------------------------------------------------------

def test_mirror_copies_requests_to_the_canary_while_stable_answers_every_one(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    vs = _start(progressing_release, mesh, example_release("mirror.yaml", traffic={"mirrorPercent": 40}))
    weighted = vs["spec"]["http"][-1]
    assert weighted["mirror"] == {"host": "reviews", "subset": "v2"}
    assert weighted["mirrorPercentage"] == {"value": 40.0}
    assert route_weights(vs) == [{"v1": 100}]
    # istiod: a request mirror policy to v2's cluster with a runtime fraction of 40%.
    config = assert_istiod_routes_say_status(cluster, ns, mesh=mesh)
    routes = host_routes(config, host=REVIEWS.format(ns=ns), port=9080) or []
    assert [(r.weights, r.mirrors) for r in routes] == [({"v1": 100}, {"v2": 40.0})]

    mesh.reset_stats()
    mirrored = 0
    for _ in range(2000):
        outcome = mesh.request(host="reviews", namespace=ns, port=9080)
        assert (outcome.code, outcome.version) == (200, "v1"), outcome
        mirrored += outcome.mirrored_to.count("v2")
    # Binomial(2000, 0.4): the standard deviation is about 22 copies; allow 4 of them.
    assert 710 <= mirrored <= 890, mirrored
    counted = mesh.stats()["services"][f"{ns}/reviews"]
    assert counted["served"] == {"v1": 2000}
    assert counted["mirrored"] == {"v2": mirrored}

    # Take over: v2 answers everything and nothing is mirrored any more.
    patch_spec(cluster, ns, "reviews", {"takeOver": "v2"})
    wait_for(lambda: _weights(cluster, ns) == [{"v2": 100}], what="take over to v2")
    vs = _routed(mesh, cluster, ns)
    assert "mirror" not in vs["spec"]["http"][-1]
    outcomes = [mesh.request(host="reviews", namespace=ns, port=9080) for _ in range(100)]
    assert {(o.code, o.version, o.mirrored_to) for o in outcomes} == {(200, "v2", ())}

    patch_spec(cluster, ns, "reviews", {"offline": True})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), what="Completed")
    assert get(cluster, "deployment", "reviews-v1", ns) is None
    _routed(mesh, cluster, ns)
    assert _served(mesh, ns, n=100) == _only("v2", 100)
    assert_routing_invariants(cluster, ns, "reviews")


# -- switching strategy on a live release -----------------------------------------------------


class _Sampler:
    """Sends requests in a loop from a thread and keeps every outcome."""

    def __init__(self, mesh: Simulator, ns: str) -> None:
        self.mesh, self.ns = mesh, ns
        self.outcomes: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.outcomes.append(self.mesh.request(host="reviews", namespace=self.ns, port=9080))
            self._stop.wait(0.002)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_switching_strategy_live_from_mirror_to_canary_to_blue_green_never_drops_a_request(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator
) -> None:
    ns = namespace
    _start(progressing_release, mesh, example_release("mirror.yaml"))
    with _Sampler(mesh, ns) as sampler:
        patch_spec(cluster, ns, "reviews", {"strategy": "Canary", "traffic": {"weight": 50}})
        wait_for(lambda: _weights(cluster, ns) == [{"v1": 50, "v2": 50}], what="Canary 50/50")
        assert "mirror" not in (get(cluster, "virtualservice", "reviews", ns) or {})["spec"]["http"][-1]
        _routed(mesh, cluster, ns)
        assert_routing_invariants(cluster, ns, "reviews")
        during_canary = len(sampler.outcomes)
        wait_for(lambda: len(sampler.outcomes) > during_canary + 200, what="requests under Canary")
        after_canary = len(sampler.outcomes)

        patch_spec(cluster, ns, "reviews", {"strategy": "BlueGreen"})
        wait_for(lambda: _weights(cluster, ns) == [{"v1": 100}], what="BlueGreen: all to v1")
        _routed(mesh, cluster, ns)
        assert_routing_invariants(cluster, ns, "reviews")
        after_blue_green = len(sampler.outcomes)
        wait_for(lambda: len(sampler.outcomes) > after_blue_green + 200, what="requests under BlueGreen")

    outcomes = sampler.outcomes
    assert len(outcomes) > 400
    assert {o.code for o in outcomes} == {200}, collections.Counter(o.code for o in outcomes)
    assert {o.version for o in outcomes} <= {"v1", "v2"}
    assert {o.version for o in outcomes[during_canary:after_canary]} == {"v1", "v2"}
    assert {o.version for o in outcomes[after_blue_green:]} == {"v1"}
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Progressing"), what="Progressing as BlueGreen")
