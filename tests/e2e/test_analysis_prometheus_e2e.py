"""The Prometheus adapter against a real Prometheus scraping Istio-named metrics."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from istio_canary import errors
from istio_canary.analysis import judge
from istio_canary.analysis.prometheus import PrometheusMetrics
from istio_canary.models import AnalysisSpec, Verdict
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

pytestmark = pytest.mark.e2e

LABELS = ["reporter", "destination_workload_namespace", "destination_service_name",
          "destination_version", "response_code"]
ISTIO_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def mesh(prometheus: Any) -> Iterator[tuple[Counter, Histogram]]:
    """An exporter with Istio's metric names, scraped by the session's Prometheus."""
    registry = CollectorRegistry()
    requests = Counter("istio_requests", "requests", LABELS, registry=registry)
    latency = Histogram("istio_request_duration_milliseconds", "latency", LABELS,
                        registry=registry, buckets=ISTIO_BUCKETS)
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    job = f"analysis-{port}"
    prometheus.add_scrape_target(job, f"127.0.0.1:{port}")
    yield requests, latency
    prometheus.remove_scrape_target(job)
    server.shutdown()
    thread.join()


def _serve(mesh: tuple[Counter, Histogram], *, namespace: str, seconds: float) -> None:
    """Stable v1 healthy; canary v2 fails 30% of its requests and is 100 ms slower."""
    requests, latency = mesh
    rng = random.Random(5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(50):
            version = "v2" if rng.random() < 0.2 else "v1"
            failed = rng.random() < (0.3 if version == "v2" else 0.001)
            labels = ("destination", namespace, "reviews", version, "503" if failed else "200")
            requests.labels(*labels).inc()
            latency.labels(*labels).observe(rng.lognormvariate(3, 0.4) + (100 if version == "v2" else 0))
        time.sleep(0.1)


def test_counts_and_health_per_version_come_back_and_the_judge_fails_the_bad_canary(
    prometheus: Any, mesh: tuple[Counter, Histogram]
) -> None:
    _serve(mesh, namespace="analysis-e2e", seconds=8)
    metrics = PrometheusMetrics(prometheus.url, timeout_seconds=2)
    counts = metrics.version_counts(namespace="analysis-e2e", service="reviews", window_seconds=6)
    assert set(counts) == {"v1", "v2"}
    assert counts["v2"].errors > 0 and counts["v1"].requests > counts["v2"].requests
    assert counts["v2"].buckets[-1][0] == float("inf")

    health = metrics.version_health(namespace="analysis-e2e", service="reviews", window_seconds=6)
    assert health["v1"].success_rate is not None and health["v1"].success_rate > 95
    assert health["v2"].success_rate is not None and health["v2"].success_rate < 90
    assert health["v2"].latency_p50_ms is not None and health["v2"].latency_p50_ms > 100

    verdict = judge.compare(stable=counts["v1"], canary=counts["v2"], spec=AnalysisSpec()).verdict
    assert verdict is Verdict.FAIL


def test_a_service_without_traffic_is_an_empty_answer(prometheus: Any) -> None:
    metrics = PrometheusMetrics(prometheus.url, timeout_seconds=2)
    assert metrics.version_counts(namespace="nowhere", service="reviews", window_seconds=60) == {}


def test_an_unreachable_prometheus_raises_metrics_unavailable_quickly() -> None:
    metrics = PrometheusMetrics(f"http://127.0.0.1:{_free_port()}", timeout_seconds=1)
    started = time.monotonic()
    with pytest.raises(errors.MetricsUnavailableError, match="did not answer"):
        metrics.version_counts(namespace="bookinfo", service="reviews", window_seconds=60)
    assert time.monotonic() - started < 5


def test_a_series_born_inside_the_window_is_counted_from_its_first_request(
    prometheus: Any, mesh: tuple[Counter, Histogram]
) -> None:
    # Istio creates a series at its first request: a canary's first 5xx starts a new series,
    # and increase() alone would take its first scrape as the starting point and lose it.
    requests, _latency = mesh
    ns = "analysis-born"
    old = requests.labels("destination", ns, "reviews", "v1", "200")
    old.inc(1000)  # counted long before the window: none of it is the window's
    metrics = PrometheusMetrics(prometheus.url, timeout_seconds=2)
    # Scraped for sure before the window starts (a new target may take a few seconds to be found).
    deadline = time.monotonic() + 60
    while metrics.query_value(f'sum(istio_requests_total{{destination_workload_namespace="{ns}"}})')[0] != 1000:
        assert time.monotonic() < deadline, "Prometheus never scraped the exporter"
        time.sleep(0.5)
    time.sleep(2)
    started = time.time()
    requests.labels("destination", ns, "reviews", "v2", "200").inc(40)
    requests.labels("destination", ns, "reviews", "v2", "500").inc(7)
    old.inc(30)
    time.sleep(3)  # a few scrapes, and nothing more counted

    window = int(time.time() - started) + 1
    counts = metrics.version_counts(namespace=ns, service="reviews", window_seconds=window)
    assert (counts["v2"].requests, counts["v2"].errors) == (47, 7)
    assert counts["v1"].requests < 100, "an old series counts only what it grew inside the window"
