"""What the operator asks of a metrics source: Istio's metrics (for the judge, for status), a custom query, a close."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from istio_canary.analysis import counts as counts_
from istio_canary.models import VersionMetrics

__all__ = ["MetricsSource"]


class MetricsSource(Protocol):
    """Istio's per-version metrics of one service (``analysis.prometheus.PrometheusMetrics``)."""

    url: str
    """``aliases``: other Service names the service's requests are reported under (routing mode Services)."""

    def version_counts(
        self, *, namespace: str, service: str, window_seconds: int, aliases: Sequence[str] = ()
    ) -> dict[str, counts_.Counts]:
        """Requests, 5xx errors and latency buckets of each version (the analysis judges these)."""
        ...

    def version_health(
        self, *, namespace: str, service: str, window_seconds: int, aliases: Sequence[str] = ()
    ) -> dict[str, VersionMetrics]:
        """Request rate, success rate and latency percentiles of each version (status shows these)."""
        ...

    def query_value(self, query: str) -> tuple[float | None, str]:
        """One PromQL query's single number, or None and why there is none (analysis.metrics)."""
        ...

    def close(self) -> None:
        """Let go of connections (a release's own Prometheus is asked once per look)."""
        ...
