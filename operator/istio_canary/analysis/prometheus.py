"""The Prometheus adapter: the only module that talks to Prometheus.

Synchronous on purpose: the operator calls it in a worker thread. Every method either
returns what Prometheus has (an empty dict when it has nothing for the service, a version
missing from the dict when that version has no traffic) or raises
:class:`~istio_canary.errors.MetricsUnavailableError` when Prometheus did not answer.
No retries here: the next look is the retry, and the state machine decides when silence
has lasted long enough to roll back (``unreachableTimeoutSeconds``).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import string
import time
from collections.abc import Callable

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from istio_canary import errors
from istio_canary.analysis import counts as counts_
from istio_canary.analysis import promql
from istio_canary.models.status import VersionMetrics

__all__ = ["PrometheusMetrics"]

Sample = tuple[dict[str, str], float]


@dataclasses.dataclass(frozen=True)
class _Scope:
    """What every query of one look shares: the service, the window, and the instant."""

    namespace: str
    service: str
    window_seconds: int
    at: float


class PrometheusMetrics:
    """Istio's per-version metrics of one Prometheus server.

    >>> metrics = PrometheusMetrics("http://prometheus.istio-system:9090")  # doctest: +SKIP
    >>> metrics.version_counts(namespace="bookinfo", service="reviews", window_seconds=120)
    ... # doctest: +SKIP
    {'v1': Counts(requests=1190.0, errors=1.0, buckets=(...)), 'v2': Counts(...)}
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._clock = clock
        # A look that waits for retries holds the handler's thread; fail fast instead.
        self._client = PrometheusConnect(
            url=self.url, retry=Retry(total=0, raise_on_status=False), timeout=timeout_seconds
        )

    def version_counts(
        self, *, namespace: str, service: str, window_seconds: int
    ) -> dict[str, counts_.Counts]:
        """Requests, 5xx errors and latency buckets of each version over the last window.

        All three queries are evaluated at one instant, so the counts cover the same time.
        A version without a request series is absent; one with requests but no 5xx series
        has 0 errors.
        """
        scope = _Scope(namespace, service, window_seconds, self._clock())
        requests_ = self._by_version(promql.REQUEST_INCREASE, scope)
        errors_ = self._by_version(promql.ERROR_INCREASE, scope)
        buckets: dict[str, dict[float, float]] = {}
        for metric, value in self._query(promql.BUCKET_INCREASE, scope):
            version, le = metric.get("destination_version"), metric.get("le")
            if version is None or le is None:
                continue
            buckets.setdefault(version, {})[float(le)] = value
        return {
            version: counts_.Counts.from_bucket_map(
                requests=count, errors=errors_.get(version, 0.0), buckets=buckets.get(version, {})
            )
            for version, count in requests_.items()
        }

    def version_health(
        self, *, namespace: str, service: str, window_seconds: int
    ) -> dict[str, VersionMetrics]:
        """Request rate (req/s), success rate (percent, 0..100) and p50/p99 latency (ms).

        The success rate is a percentage, like ``status.successRate`` and Flagger's
        ``request-success-rate``; None when the version served nothing in the window.
        """
        scope = _Scope(namespace, service, window_seconds, self._clock())
        rates = self._by_version(promql.REQUEST_RATE, scope)
        error_rates = self._by_version(promql.ERROR_RATE, scope)
        p50 = self._by_version(promql.LATENCY_QUANTILE, scope, quantile=0.5)
        p99 = self._by_version(promql.LATENCY_QUANTILE, scope, quantile=0.99)
        updated_at = datetime.datetime.fromtimestamp(scope.at, datetime.UTC).isoformat(timespec="seconds")
        health = {}
        for version, rate in rates.items():
            success = None
            if rate > 0:
                success = 100.0 * max(0.0, 1.0 - error_rates.get(version, 0.0) / rate)
            health[version] = VersionMetrics(
                request_rate=rate,
                success_rate=success,
                latency_p50_ms=p50.get(version),
                latency_p99_ms=p99.get(version),
                updated_at=updated_at.replace("+00:00", "Z"),
            )
        return health

    def _by_version(
        self, template: string.Template, scope: _Scope, *, quantile: float | None = None
    ) -> dict[str, float]:
        return {
            metric["destination_version"]: value
            for metric, value in self._query(template, scope, quantile=quantile)
            if "destination_version" in metric
        }

    def _query(
        self,
        template: string.Template,
        scope: _Scope,
        *,
        quantile: float | None = None,
    ) -> list[Sample]:
        """Run one instant query; finite samples only (``histogram_quantile`` gives NaN on 0/0)."""
        query = promql.render(
            template, namespace=scope.namespace, service=scope.service,
            window_seconds=scope.window_seconds, quantile=quantile,
        )
        try:
            result = self._client.custom_query(query, params={"time": f"{scope.at:.3f}"})
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError) as e:
            # The full text of a connection error repeats the whole query: keep it short.
            detail = str(e)[:200]
            raise errors.MetricsUnavailableError(
                f"Prometheus at {self.url} did not answer: {type(e).__name__}: {detail}"
            ) from e
        samples: list[Sample] = []
        for series in result or []:
            try:
                value = float(series["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if math.isfinite(value):
                samples.append((dict(series.get("metric", {})), value))
        return samples
