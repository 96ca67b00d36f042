"""Issue 15: custom PromQL checks (analysis.metrics) against the real Prometheus.

The mesh simulator serves both versions healthy, so Istio's metrics alone would promote the
canary; a business metric exported beside it (checkout failures per version, scraped by the
session's Prometheus) says v2 is bad, and the check rolls it back. A template that is not PromQL
is refused before anything moves.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from devcluster import Cluster, PrometheusServer
from meshsim.simulator import Simulator
from prometheus_client import CollectorRegistry, Counter, start_http_server

from tests.e2e.helpers import EXAMPLES, get, release_phase, wait_for
from tests.e2e.loopback import free_port
from tests.e2e.releases import ReleaseStarter

pytestmark = pytest.mark.usefixtures("invariant_monitor")

CHECKOUT = 'sum(rate(checkout_failures_total{namespace="{{ namespace }}",version="{{ version }}"}[{{ interval }}]))'


@pytest.fixture
def checkout_failures(prometheus: PrometheusServer, namespace: str) -> Iterator[dict[str, float]]:
    """A business metric per version, counted 10 times a second at the rates the test sets (per second)."""
    registry = CollectorRegistry()
    failures = Counter("checkout_failures", "failed checkouts", ["namespace", "version"], registry=registry)
    rates = {"v1": 0.1, "v2": 0.1}
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    job = f"checkout-{port}"
    prometheus.add_scrape_target(job, f"127.0.0.1:{port}")
    stop = threading.Event()

    def count() -> None:
        while not stop.wait(0.1):
            for version, rate in rates.items():
                failures.labels(namespace, version).inc(rate / 10)

    counting = threading.Thread(target=count, daemon=True)
    counting.start()
    yield rates
    stop.set()
    counting.join()
    prometheus.remove_scrape_target(job)
    server.shutdown()
    thread.join()


def release(**analysis: Any) -> dict[str, Any]:
    body = yaml.safe_load((EXAMPLES / "canary-analysis.yaml").read_text())
    body["spec"]["analysis"].update(
        {"intervalSeconds": 2, "steps": [20, 50], "minRequests": 20, "maxErrorRateIncrease": 0.05,
         "latencyQuantile": 0.9, "promotion": "Offline", **analysis}
    )
    return dict(body)


def test_a_business_metric_check_rolls_back_a_canary_that_istios_metrics_would_promote(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer, checkout_failures: dict[str, float],
) -> None:
    ns = namespace
    checkout_failures["v2"] = 3.0  # failed checkouts per second: v2 breaks checkout, not HTTP
    checks = [{"name": "checkout-failures", "query": CHECKOUT, "thresholdRange": {"max": 1}, "failureLimit": 2}]
    aborted = progressing_release(
        release(metrics=checks),
        until="Aborted",
        operator_args=("--prometheus-url", prometheus.url, "--metrics-interval", "2"),
        prepare=lambda: mesh.set_load(namespace=ns, service="reviews", rps=60),
    ).body

    message = aborted["status"]["message"]
    assert message.startswith("aborted (analysis failed at step 1 (20%): metric checkout-failures canary = ")
    assert "outside [-inf, 1] (2 of 2 looks in a row)" in message
    history = aborted["status"]["analysis"]["history"]
    assert [c["metricsOutside"] for c in history[-2:]] == [["checkout-failures"], ["checkout-failures"]]
    # Istio's metrics alone said nothing against v2: no look failed on errors or latency.
    assert not any("canary worse" in c["reason"] or "canary slower" in c["reason"] for c in history)
    assert get(cluster, "deployment", "reviews-v2", ns) is None


def test_a_check_within_its_range_lets_the_canary_through_and_one_without_data_holds_it(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    prometheus: PrometheusServer, checkout_failures: dict[str, float],
) -> None:
    ns = namespace
    checks = [
        {"name": "checkout-failures", "query": CHECKOUT, "thresholdRange": {"max": 0.5},
         "comparison": "DifferenceFromStable"},
        {"name": "no-such-metric", "query": 'sum(nothing_here{namespace="{{ namespace }}"})',
         "thresholdRange": {"max": 1}},
    ]
    progressing_release(
        release(metrics=checks),
        until="Progressing",
        operator_args=("--prometheus-url", prometheus.url, "--metrics-interval", "2"),
        prepare=lambda: mesh.set_load(namespace=ns, service="reviews", rps=60),
    )

    def reasons() -> list[str]:
        status = (get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}
        return [c["reason"] for c in (status.get("analysis") or {}).get("history") or []]

    held = "metric no-such-metric: no data (canary: the query answered no series)"
    wait_for(lambda: reasons().count(held) >= 3, timeout=90, what="three looks held by the check without data")
    assert (get(cluster, "canaryrelease", "reviews", ns) or {})["status"]["analysis"]["step"] == 0

    # Without it, the business metric (the same for both versions) lets the canary through.
    cluster.kubectl("patch", "canaryrelease", "reviews", "-n", ns, "--type", "json",
                    "-p", json.dumps([{"op": "remove", "path": "/spec/analysis/metrics/1"}]))  # fmt: skip
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Completed"), timeout=120, what="Completed")


def test_a_template_that_is_not_promql_fails_the_release_before_anything_moves(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, prometheus: PrometheusServer
) -> None:
    ns = namespace
    broken = [{"name": "broken", "query": "sum(rate(x[{{ interval }}])", "thresholdRange": {"max": 1}}]
    failed = progressing_release(
        release(metrics=broken), until="Failed", operator_args=("--prometheus-url", prometheus.url)
    ).body
    assert "analysis.metrics[0].query" in failed["status"]["message"]
    assert "not PromQL" in failed["status"]["message"]
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    assert get(cluster, "virtualservice", "reviews", ns) is None
