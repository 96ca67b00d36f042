"""Per-version traffic health for status, summarised from one look at Prometheus (pure).

A version Prometheus has no traffic for keeps its last good values, marked stale, and the
MetricsAvailable condition says which version is silent; so does a Prometheus that does not
answer. Neither is an error of the reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus, VersionMetrics

__all__ = ["Health", "summarise", "unreachable"]


@dataclass(frozen=True, kw_only=True)
class Health:
    """One refresh of per-version metrics; ``available`` None: not looked at this time."""

    metrics: dict[str, VersionMetrics] | None = None
    stale: bool = False
    available: bool | None = None
    reason: str = ""
    message: str = ""


def unreachable(*, url: str, detail: str) -> Health:
    """Prometheus did not answer: the last values stay, marked stale."""
    return Health(
        stale=True,
        available=False,
        reason="PrometheusUnreachable",
        message=f"Prometheus at {url} unreachable, showing the last values (stale): {detail}",
    )


def summarise(
    *,
    answer: Mapping[str, VersionMetrics],
    spec: CanaryReleaseSpec,
    previous: CanaryReleaseStatus,
    url: str,
    window_seconds: int,
) -> Health:
    """What Prometheus answered, with the last good values for a version it has no traffic for."""
    metrics = dict(answer)
    silent = []
    for version in (spec.stable.version, spec.canary.version):
        if not (metrics.get(version) or VersionMetrics()).request_rate:
            silent.append(version)
            metrics.pop(version, None)
            last = next((v.metrics for v in previous.versions if v.version == version and v.metrics), None)
            if last is not None:
                metrics[version] = last.model_copy(update={"stale": True})
    if silent:
        return Health(
            metrics=metrics, available=False, reason="NoTraffic",
            message=f"no traffic to {' and '.join(silent)} in the last {window_seconds} s (Prometheus at {url})",
        )
    return Health(
        metrics=metrics, available=True, reason="MetricsFound",
        message=f"Prometheus at {url} has traffic for both versions over the last {window_seconds} s",
    )
