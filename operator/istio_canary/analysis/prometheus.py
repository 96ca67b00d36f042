"""The Prometheus adapter: the only module that talks to Prometheus.

Synchronous on purpose: the operator calls it in a worker thread. Every method either
returns what Prometheus has (an empty dict when it has nothing for the service, a version
missing from the dict when that version has no traffic) or raises
:class:`~istio_canary.errors.MetricsUnavailableError` when Prometheus did not answer.
No retries here: the next look is the retry, and the state machine decides when silence
has lasted long enough to roll back (``unreachableTimeoutSeconds``).

Requests go through ``egress.GuardedSession``: the outbound policy's address checks, bounded
answers, and error messages that carry a status code and fixed words only, never what the
server wrote (it may be anything: a URL a release chose, an admin page holding a token). A
refused address raises :class:`~istio_canary.errors.OutboundRefusedError`, not
``MetricsUnavailableError``: the release is wrong, Prometheus is not merely silent.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import string
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_api_client import PrometheusConnect

from istio_canary import errors, outbound
from istio_canary.analysis import counts as counts_
from istio_canary.analysis import egress as egress_
from istio_canary.analysis import promql
from istio_canary.models.status import VersionMetrics

__all__ = ["PrometheusMetrics", "read_credentials_dir"]

Sample = tuple[dict[str, str], float]


@dataclasses.dataclass(frozen=True)
class _Scope:
    """What every query of one look shares: the service, the window, and the instant."""

    namespace: str
    service: str
    window_seconds: int
    at: float
    aliases: tuple[str, ...] = ()


def read_credentials_dir(path: Path) -> outbound.Credentials:
    """The operator's own Prometheus credentials: a mounted Secret's files ``token``, or
    ``username`` and ``password``, and/or ``ca.crt`` (CredentialsError: none of them)."""
    values = {}
    for key in ("token", "username", "password", "ca.crt"):
        try:
            values[key] = (path / key).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError):
            raise errors.CredentialsError(f"{path / key} cannot be read as text") from None
    if "ca.crt" in values:
        values["ca.crt"] += "\n"
    return outbound.credentials_from(values, where=f"the directory {path} (--prometheus-credentials-dir)")


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
        egress: egress_.Egress | None = None,
        credentials: outbound.Credentials | Callable[[], outbound.Credentials] | None = None,
        headers: Mapping[str, str] | None = None,
        verify_tls: bool = True,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``egress`` defaults to a policy that allows this URL only (whoever builds the client
        chose it). ``credentials`` go into every request and nowhere else; given as a function,
        it is called at every request (a mounted token that rotates), and its CA bundle is read
        once, here. ``headers`` go with every request (a tenant ID). ValueError: the CA bundle
        holds no certificate."""
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._clock = clock
        if egress is None:
            egress = egress_.Egress(policy=outbound.OutboundPolicy.build(prometheus_url=self.url))
        read: Callable[[], outbound.Credentials | None]
        if callable(credentials):
            read = credentials
        else:
            fixed = credentials
            read = lambda: fixed  # noqa: E731
        first = read()
        session = egress_.GuardedSession(
            egress=egress, timeout_seconds=timeout_seconds, ca_pem=first.ca_pem if first else None,
            verify_tls=verify_tls,
        )
        session.headers.update(headers or {})
        # A look that waits for retries holds the handler's thread: the session never retries.
        self._client = PrometheusConnect(
            url=self.url, session=session, timeout=timeout_seconds, auth=egress_.CredentialsAuth(read)
        )

    def close(self) -> None:
        self._client.close()

    def version_counts(
        self, *, namespace: str, service: str, window_seconds: int, aliases: Sequence[str] = ()
    ) -> dict[str, counts_.Counts]:
        """Requests, 5xx errors and latency buckets of each version over the last window.

        All three queries are evaluated at one instant, so the counts cover the same time.
        A version without a request series is absent; one with requests but no 5xx series
        has 0 errors.
        """
        scope = _Scope(namespace, service, window_seconds, self._clock(), tuple(aliases))
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
        self, *, namespace: str, service: str, window_seconds: int, aliases: Sequence[str] = ()
    ) -> dict[str, VersionMetrics]:
        """Request rate (req/s), success rate (percent, 0..100) and p50/p99 latency (ms).

        The success rate is a percentage, like ``status.successRate`` and Flagger's
        ``request-success-rate``; None when the version served nothing in the window.
        """
        scope = _Scope(namespace, service, window_seconds, self._clock(), tuple(aliases))
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
            window_seconds=scope.window_seconds, quantile=quantile, aliases=scope.aliases,
        )
        return self._samples(self._instant(query, scope.at))

    def query_value(self, query: str) -> tuple[float | None, str]:
        """One number from a PromQL query (a check of ``analysis.metrics``), or None and why not.

        A scalar, or an instant vector of one series, is a number; no series, several, NaN, or a
        query Prometheus refuses (HTTP 400 or 422: it parses here but not there) is none.
        Prometheus not answering raises, as for Istio's metrics.
        """
        try:
            result = self._instant(query, self._clock())
        except errors.MetricsUnavailableError as err:
            if err.status_code in (400, 422):
                return None, f"Prometheus refused the query (HTTP {err.status_code})"
            raise
        if len(result) == 2 and isinstance(result[0], (int, float)) and isinstance(result[1], str):
            samples: list[Sample] = [({}, float(result[1]))]  # a scalar: [time, "value"]
        else:
            samples = self._samples(result)
        if len(samples) != 1:
            return None, f"the query answered {len(samples)} series" if samples else "the query answered no series"
        return samples[0][1], ""

    def _instant(self, query: str, at: float) -> list[Any]:
        """The result of one instant query: a list, whatever it holds."""
        try:
            result = self._client.custom_query(query, params={"time": f"{at:.3f}"})
        except errors.OutboundRefusedError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure is "unavailable", in fixed words
            detail = egress_.describe_failure(e, timeout_seconds=self._timeout)
            code = e.status_code if isinstance(e, egress_.HttpStatusError) else None
            # "from None": the cause's text may quote the server, and tracebacks print it.
            raise errors.MetricsUnavailableError(f"Prometheus at {self.url} {detail}", status_code=code) from None
        if not isinstance(result, list):
            raise errors.MetricsUnavailableError(
                f"Prometheus at {self.url} answered something that is not a query result"
            )
        return result

    @staticmethod
    def _samples(result: list[Any]) -> list[Sample]:
        """The finite samples of an instant vector (``histogram_quantile`` gives NaN on 0/0)."""
        samples: list[Sample] = []
        for series in result:
            try:
                value = float(series["value"][1])
                metric = {str(k): str(v) for k, v in series.get("metric", {}).items()}
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                continue  # not a sample of an instant vector
            if math.isfinite(value):
                samples.append((metric, value))
        return samples
