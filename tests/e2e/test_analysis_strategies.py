"""Issue 15: the analysis for every strategy, judged by the real Prometheus scraping the mesh simulator.

Mirror: the steps are the percent of requests copied to the canary; its answers reach nobody, so
a bad canary is rolled back before any user sees one of its errors, and a good one is promoted.
BlueGreen: the canary gets only the test requests ``traffic.match`` sends it (a header) until
the analysis promotes it; then everything switches at once.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from devcluster import Cluster, PrometheusServer
from meshsim.simulator import Simulator

from tests.e2e.helpers import EXAMPLES, get, route_weights, wait_for
from tests.e2e.releases import ReleaseStarter

pytestmark = pytest.mark.usefixtures("invariant_monitor")

RPS = 60


def release(strategy: str, **spec: Any) -> dict[str, Any]:
    body = yaml.safe_load((EXAMPLES / "canary-analysis.yaml").read_text())
    body["spec"]["strategy"] = strategy
    body["spec"]["analysis"].update(
        {"intervalSeconds": 2, "steps": [50, 100], "minRequests": 40, "maxErrorRateIncrease": 0.05,
         "latencyQuantile": 0.9, "promotion": "Offline"}
    )
    body["spec"].update(spec)
    return dict(body)


def start(
    progressing_release: ReleaseStarter, mesh: Simulator, prometheus: PrometheusServer, body: dict[str, Any],
    *, until: str, mix: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    ns = progressing_release.namespace
    return progressing_release(
        body,
        until=until,
        operator_args=("--prometheus-url", prometheus.url, "--metrics-interval", "2"),
        prepare=lambda: mesh.set_load(namespace=ns, service="reviews", rps=RPS, mix=mix),
    ).body


def served(mesh: Simulator, ns: str, what: str) -> dict[str, int]:
    return dict((mesh.stats()["services"].get(f"{ns}/reviews") or {}).get(what) or {})


def test_a_mirrored_canary_with_errors_is_rolled_back_and_no_user_got_one_of_its_answers(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer,
) -> None:
    ns = namespace
    mesh.set_version_behaviour(namespace=ns, service="reviews", version="v2", error_rate=0.3)
    aborted = start(progressing_release, mesh, prometheus, release("Mirror"), until="Aborted")

    assert aborted["status"]["message"].startswith("aborted (analysis failed at step 1 (50%): errors")
    assert served(mesh, ns, "mirrored").get("v2", 0) > 0, "v2 was judged on mirrored requests"
    assert served(mesh, ns, "served").get("v2", 0) == 0, "a user got an answer from v2"
    assert get(cluster, "deployment", "reviews-v2", ns) is None


def test_a_good_mirrored_canary_is_promoted_and_stable_is_taken_offline(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer,
) -> None:
    ns = namespace
    done = start(progressing_release, mesh, prometheus, release("Mirror"), until="Completed")

    passed = [c for c in done["status"]["analysis"]["history"] if c["verdict"] == "Pass"]
    assert [c["weight"] for c in passed] == [50, 100], "each step judged at its mirror percent"
    assert get(cluster, "deployment", "reviews-v1", ns) is None
    assert route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) in ([], [{"v2": 100}])


def test_blue_green_judges_the_test_requests_a_header_sends_before_the_switch(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer,
) -> None:
    ns = namespace
    test_requests = ({"fraction": 0.3, "headers": {"x-test": "blue-green"}},)
    match = [{"headers": {"x-test": {"exact": "blue-green"}}}]
    body = release("BlueGreen", traffic={"match": match})
    moving = start(progressing_release, mesh, prometheus, body, until="Progressing", mix=test_requests)
    # Before the switch: users stay on v1; only the test requests reach v2.
    assert route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v2": 100}, {"v1": 100}]
    assert moving["status"]["traffic"]["canary"] == 0

    done = wait_for(
        lambda: (get(cluster, "canaryrelease", "reviews", ns) or {}).get("status", {}).get("phase") == "Completed"
        and get(cluster, "canaryrelease", "reviews", ns),
        timeout=120,
        what="Completed",
    )
    passed = [c for c in done["status"]["analysis"]["history"] if c["verdict"] == "Pass"]
    assert len(passed) == 2 and all(c["canaryRequests"] > 0 for c in passed)
    assert get(cluster, "deployment", "reviews-v1", ns) is None
