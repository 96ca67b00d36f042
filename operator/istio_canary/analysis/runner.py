"""One look at the metrics for a release under analysis: query, then judge.

The reconciler calls :func:`check` in a thread; the state machine acts on the returned
``CheckResult``. "Prometheus unreachable" is a result (``Verdict.UNREACHABLE``), never an
exception, so the state machine can hold the weight and count how long it has lasted.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from istio_canary.analysis import counts as counts_
from istio_canary.analysis import judge
from istio_canary.analysis.prometheus import PrometheusMetrics
from istio_canary.errors import MetricsUnavailableError
from istio_canary.models import AnalysisStatus, CanaryReleaseSpec, CheckResult, Verdict

__all__ = ["check"]


@functools.lru_cache(maxsize=16)
def _client(url: str) -> PrometheusMetrics:
    return PrometheusMetrics(url)


def check(
    *,
    prometheus: PrometheusMetrics | None,
    spec: CanaryReleaseSpec,
    namespace: str,
    status: AnalysisStatus,
    now: datetime,
) -> CheckResult | None:
    """The judge's verdict on the current step, or None when it is not yet time to look again."""
    analysis = spec.analysis
    if analysis is None:
        return None
    if status.history:
        last = datetime.fromisoformat(status.history[-1].time)
        if now - last < timedelta(seconds=analysis.interval_seconds):
            return None
    started = datetime.fromisoformat(status.step_started_at) if status.step_started_at else now
    window = max(1, int((now - started).total_seconds()))
    source = _client(analysis.prometheus_url) if analysis.prometheus_url else prometheus

    def result(verdict: Verdict, reason: str) -> CheckResult:
        return CheckResult(time=now.isoformat(), step=status.step, weight=status.weight, verdict=verdict, reason=reason)

    if source is None:
        return result(Verdict.UNREACHABLE, "no Prometheus configured: set analysis.prometheusUrl or --prometheus-url")
    try:
        by_version = source.version_counts(namespace=namespace, service=spec.service, window_seconds=window)
    except MetricsUnavailableError as err:
        return result(Verdict.UNREACHABLE, str(err))  # "Prometheus at URL did not answer: ..."
    judgement = judge.compare(
        stable=by_version.get(spec.stable.version, counts_.Counts()),
        canary=by_version.get(spec.canary.version, counts_.Counts()),
        spec=analysis,
    )
    return judgement.check_result(time=now.isoformat(), step=status.step, weight=status.weight)
