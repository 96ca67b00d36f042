"""Issue 5: per-version traffic health in status, from a real Prometheus scraping the mesh.

The operator queries Prometheus through prometheus-api-client every ``--metrics-interval``
seconds over the last ``--metrics-window`` seconds; these tests use 1 s and 15 s so that each
finishes in well under a minute.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import pytest
import yaml
from devcluster import Cluster, PrometheusServer
from meshsim.routers import EnvoyRouter
from meshsim.simulator import Simulator

from tests.e2e.helpers import (
    EXAMPLES,
    get,
    patch_spec,
    route_weights,
    wait_for,
)
from tests.e2e.istiod_routes import host_routes
from tests.e2e.processes import OperatorProcess
from tests.e2e.releases import ReleaseStarter

WINDOW = 15
RPS = 60


def release(weight: int = 30) -> dict[str, Any]:
    body = yaml.safe_load((EXAMPLES / "canary-weight.yaml").read_text())
    body["spec"]["traffic"]["weight"] = weight
    return dict(body)


def status(cluster: Cluster, ns: str) -> dict[str, Any]:
    return dict((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {})


def condition(cluster: Cluster, ns: str, type_: str) -> dict[str, Any]:
    return next((c for c in status(cluster, ns).get("conditions", []) if c["type"] == type_), {})


def version_metrics(cluster: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    return {v["version"]: v.get("metrics") or {} for v in status(cluster, ns).get("versions", [])}


def metrics_since(cluster: Cluster, ns: str, since: float) -> dict[str, dict[str, Any]] | None:
    """Both versions' metrics, once they were computed over a window that starts after ``since``."""
    found = version_metrics(cluster, ns)
    for metrics in found.values():
        updated = metrics.get("updatedAt")
        if not updated or datetime.fromisoformat(updated).timestamp() < since + WINDOW + 1:
            return None
    return found if set(found) == {"v1", "v2"} else None


def routed_by_simulator(mesh: Simulator, ns: str, weights: dict[str, int]) -> bool:
    """The simulator routes by an istiod push whose reviews routes split by ``weights``."""
    config = mesh.router.config(ns) if isinstance(mesh.router, EnvoyRouter) else None
    routes = host_routes(config, host=f"reviews.{ns}.svc.cluster.local", port=9080) if config else None
    return [r.weights for r in routes or []] == [weights]


def within_sampling_error(share: float, expected: float, n: float) -> bool:
    """Five binomial standard deviations: a false failure about once in three million runs."""
    return abs(share - expected) <= 5 * math.sqrt(expected * (1 - expected) / n)


def start_progressing(progressing_release: ReleaseStarter, prometheus_url: str, mesh: Simulator) -> OperatorProcess:
    ns = progressing_release.namespace
    op = progressing_release(
        release(30),
        operator_args=("--prometheus-url", prometheus_url, "--metrics-interval", "1", "--metrics-window", str(WINDOW)),
    ).operator
    wait_for(
        lambda: routed_by_simulator(mesh, ns, {"v1": 70, "v2": 30}), timeout=15, what="the simulator routing 70/30"
    )
    return op


def test_reported_rates_and_served_counts_agree_with_a_30_70_split(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator, prometheus: PrometheusServer
) -> None:
    ns = namespace
    start_progressing(progressing_release, prometheus.url, mesh)

    # No traffic yet: status says so plainly instead of showing zeros.
    cond = wait_for(
        lambda: (c := condition(cluster, ns, "MetricsAvailable")).get("status") == "False" and c,
        timeout=30, what="MetricsAvailable False without traffic",
    )
    assert cond["reason"] == "NoTraffic"
    assert f"no traffic to v1 and v2 in the last {WINDOW} s" in cond["message"]

    mesh.reset_stats()
    started = time.time()
    mesh.set_load(namespace=ns, service="reviews", rps=RPS)
    reported = wait_for(lambda: metrics_since(cluster, ns, started), timeout=60, what="a full window of metrics")
    served = dict(mesh.stats()["services"][f"{ns}/reviews"]["served"])

    total_served = served["v1"] + served.get("v2", 0)
    assert within_sampling_error(served.get("v2", 0) / total_served, 0.3, total_served), served
    rate_v1, rate_v2 = reported["v1"]["requestRate"], reported["v2"]["requestRate"]
    in_window = (rate_v1 + rate_v2) * WINDOW
    assert within_sampling_error(rate_v2 / (rate_v1 + rate_v2), 0.3, in_window), reported
    for version in ("v1", "v2"):
        assert reported[version]["successRate"] == pytest.approx(100.0)
        assert 0 < reported[version]["latencyP50Ms"] <= reported[version]["latencyP99Ms"]
        assert reported[version]["stale"] is False
    cond = condition(cluster, ns, "MetricsAvailable")
    assert cond["status"] == "True" and cond["reason"] == "MetricsFound"

    table = cluster.kubectl("get", "canaryrelease", "reviews", "-n", ns).stdout.splitlines()
    assert "SUCCESS" in table[0].upper() and "100" in table[1]


def test_a_version_with_ten_percent_errors_shows_a_success_rate_near_ninety(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator, prometheus: PrometheusServer
) -> None:
    ns = namespace
    mesh.set_version_behaviour(namespace=ns, service="reviews", version="v2", error_rate=0.1)
    start_progressing(progressing_release, prometheus.url, mesh)
    started = time.time()
    mesh.set_load(namespace=ns, service="reviews", rps=RPS)
    reported = wait_for(lambda: metrics_since(cluster, ns, started), timeout=60, what="a full window of metrics")

    canary = reported["v2"]
    in_window = canary["requestRate"] * WINDOW
    assert within_sampling_error(canary["successRate"] / 100, 0.9, in_window), canary
    assert reported["v1"]["successRate"] == pytest.approx(100.0)
    # status.successRate is the canary's, as a percentage (the printer column); both read from
    # one status, as the metrics refresh every second.
    now = status(cluster, ns)
    canary_now = next(v["metrics"] for v in now["versions"] if v["version"] == "v2")
    assert now["successRate"] == pytest.approx(canary_now["successRate"], abs=0.01)


def test_prometheus_going_away_keeps_the_last_values_marked_stale_and_the_operator_running(
    cluster: Cluster,
    namespace: str,
    progressing_release: ReleaseStarter,
    mesh: Simulator,
    own_prometheus: PrometheusServer,
) -> None:
    ns, own = namespace, own_prometheus
    op = start_progressing(progressing_release, own.url, mesh)
    started = time.time()
    mesh.set_load(namespace=ns, service="reviews", rps=RPS)
    good = wait_for(lambda: metrics_since(cluster, ns, started), timeout=60, what="a full window of metrics")
    own.stop()

    def unreachable() -> dict[str, Any] | None:
        cond = condition(cluster, ns, "MetricsAvailable")
        return cond if cond.get("reason") == "PrometheusUnreachable" else None

    cond = wait_for(unreachable, timeout=30, what="MetricsAvailable says Prometheus is unreachable")
    assert cond["status"] == "False"
    assert f"Prometheus at {own.url} unreachable" in cond["message"]
    stale = version_metrics(cluster, ns)
    for version in ("v1", "v2"):
        assert stale[version]["stale"] is True
        assert stale[version]["requestRate"] == good[version]["requestRate"]
        assert stale[version]["updatedAt"] == good[version]["updatedAt"]

    # The operator keeps running and keeps routing.
    assert op.proc is not None and op.proc.poll() is None
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 50}})
    wait_for(
        lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 50, "v2": 50}],
        timeout=30, what="weight 50 applied while Prometheus is down",
    )
    assert status(cluster, ns)["phase"] == "Progressing"
