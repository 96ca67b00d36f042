"""One look at the metrics for a release under analysis: query, then judge.

The reconciler calls :func:`check` in a thread; the state machine acts on the returned
``CheckResult``. "Prometheus unreachable" is a result (``Verdict.UNREACHABLE``), never an
exception, so the state machine can hold the weight and count how long it has lasted.

A release's own ``analysis.prometheusUrl`` is checked against the outbound policy before
anything is sent, and its ``prometheusAuth`` Secret is read only then, just before the look;
a refusal (:class:`~istio_canary.errors.OutboundRefusedError`) or a Secret that cannot be used
(:class:`~istio_canary.errors.CredentialsError`) is raised: the release is wrong, and the
reconciler reports it as Failed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from istio_canary import errors, outbound
from istio_canary.analysis import counts as counts_
from istio_canary.analysis import custom, judge
from istio_canary.analysis.egress import Egress
from istio_canary.analysis.prometheus import PrometheusMetrics
from istio_canary.analysis.source import MetricsSource
from istio_canary.errors import MetricsUnavailableError
from istio_canary.models import AnalysisStatus, CanaryReleaseSpec, CheckResult, Verdict
from istio_canary.models.analysis import AnalysisSpec, PrometheusAuth

__all__ = ["check", "query_window"]

ReadCredentials = Callable[[str], outbound.Credentials]
"""Secret name -> the credentials it holds (read from the release's namespace)."""


@functools.lru_cache(maxsize=16)
def _client(url: str, egress: Egress) -> PrometheusMetrics:
    return PrometheusMetrics(url, egress=egress)


def check(
    *,
    prometheus: MetricsSource | None,
    spec: CanaryReleaseSpec,
    namespace: str,
    status: AnalysisStatus,
    now: datetime,
    egress: Egress | None = None,
    read_credentials: ReadCredentials | None = None,
) -> CheckResult | None:
    """The judge's verdict on the current step, or None when it is not yet time to look again."""
    analysis = spec.analysis
    if analysis is None:
        return None
    window = _due_window(analysis, status=status, now=now)
    if window is None:
        return None
    source: MetricsSource | None = prometheus
    own = False
    if analysis.prometheus_url:
        source, own = _release_prometheus(
            analysis.prometheus_url,
            analysis.prometheus_auth,
            egress=egress or Egress(),
            read_credentials=read_credentials,
        )

    def result(verdict: Verdict, reason: str) -> CheckResult:
        return CheckResult(time=now.isoformat(), step=status.step, weight=status.weight, verdict=verdict, reason=reason)

    if source is None:
        return result(Verdict.UNREACHABLE, "no Prometheus configured: set analysis.prometheusUrl or --prometheus-url")
    try:
        by_version = source.version_counts(
            namespace=namespace, service=spec.service, window_seconds=window, aliases=spec.metric_aliases
        )
        readings = _read_checks(source, spec=spec, namespace=namespace, window=window)
    except MetricsUnavailableError as err:
        return result(Verdict.UNREACHABLE, str(err))  # fixed words: "Prometheus at URL answered HTTP 403"
    finally:
        if own:
            source.close()
    return _judged(spec, by_version=by_version, readings=readings, status=status, now=now)


def _judged(
    spec: CanaryReleaseSpec,
    *,
    by_version: dict[str, counts_.Counts],
    readings: list[custom.Reading],
    status: AnalysisStatus,
    now: datetime,
) -> CheckResult:
    """The judge's verdict on Istio's counts, made stricter by the custom checks' readings."""
    assert spec.analysis is not None
    judgement = judge.compare(
        stable=by_version.get(spec.stable.version, counts_.Counts()),
        canary=by_version.get(spec.canary.version, counts_.Counts()),
        spec=spec.analysis,
        carried=status.evidence,
        step=status.step,
    )
    looked = judgement.check_result(time=now.isoformat(), step=status.step, weight=status.weight)
    outcome = custom.combine(
        verdict=judgement.verdict, reason=judgement.reason, readings=readings, history=status.history
    )
    return looked.model_copy(
        update={"verdict": outcome.verdict, "reason": outcome.reason, "metrics_outside": list(outcome.outside)}
    )


def _read_checks(
    source: MetricsSource, *, spec: CanaryReleaseSpec, namespace: str, window: int
) -> list[custom.Reading]:
    """Each ``analysis.metrics`` check's reading at this look (MetricsUnavailableError: Prometheus is silent)."""
    checks = spec.analysis.metrics if spec.analysis else []

    def values(version: str) -> dict[str, str]:
        return custom.template_values(namespace=namespace, service=spec.service, version=version, window_seconds=window)

    return [
        custom.read(
            check, ask=source.query_value, values=values, stable=spec.stable.version, canary=spec.canary.version
        )
        for check in checks
    ]


def _due_window(spec: AnalysisSpec, *, status: AnalysisStatus, now: datetime) -> int | None:
    """The window to query now, or None when it is not yet time to look again."""
    if status.history:
        last = datetime.fromisoformat(status.history[-1].time)
        if now - last < timedelta(seconds=spec.interval_seconds):
            return None
    started = datetime.fromisoformat(status.step_started_at) if status.step_started_at else now
    return query_window(spec, seconds=(now - started).total_seconds())


def query_window(spec: AnalysisSpec, *, seconds: float) -> int | None:
    """The ``increase()`` window for a step ``seconds`` old; None while it is too young to look at.

    With ``scrapeIntervalSeconds`` set, the window covers whole scrapes and at least two (one
    sample alone gives ``increase()`` nothing, which would read as NoData).
    """
    window = max(1, int(seconds))
    scrape = spec.scrape_interval_seconds
    if scrape is None:
        return window
    if window < 2 * scrape:
        return None
    return scrape * math.ceil(window / scrape)


def _release_prometheus(
    url: str, auth: PrometheusAuth | None, *, egress: Egress, read_credentials: ReadCredentials | None
) -> tuple[PrometheusMetrics, bool]:
    """The client of the release's own Prometheus, and whether it is this look's alone.

    The policy decides first: a refused URL is never resolved, let alone called, and its
    Secret is never read.
    """
    checked = str(egress.policy.check_release_prometheus_url(url))
    if auth is None:
        return _client(checked, egress), False
    credentials = None
    if auth.secret_ref is not None:
        if read_credentials is None:
            raise errors.CredentialsError("prometheusAuth.secretRef is set, but this operator reads no Secrets")
        credentials = read_credentials(auth.secret_ref.name)
    try:
        # A client holding credentials is never cached: the Secret is read again at the next look.
        client = PrometheusMetrics(
            checked, egress=egress, credentials=credentials, headers=auth.headers,
            verify_tls=not auth.insecure_skip_tls_verify,
        )
    except ValueError as err:
        where = f"key ca.crt of Secret {auth.secret_ref.name if auth.secret_ref else '?'} (analysis.prometheusAuth)"
        raise errors.CredentialsError(f"{where} {err}") from None
    return client, True
