"""The release page's charts: PromQL per version over time, and its answers as chart series. (pure)

The queries are the analysis' own (``analysis.promql``): the requests the destination's sidecar
reported, per ``destination_version``. The success rate is computed here, per timestamp, for
the reason ``promql.ERROR_RATE`` gives: a PromQL division drops a version without 5xx series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from istio_canary.analysis import promql

__all__ = ["CHARTS", "QUERIES", "chart_queries", "charts", "matrix_by_version"]

CHARTS = ("requestRate", "successRate", "latencyP50Ms", "latencyP99Ms")
QUERIES = ("requests", "errors", "p50", "p99")

Points = list[tuple[float, float]]


def chart_queries(*, namespace: str, service: str, window_seconds: int) -> dict[str, str]:
    """One query per series family; each answers one series per version."""

    def render(template: Any, quantile: float | None = None) -> str:
        return promql.render(
            template, namespace=namespace, service=service, window_seconds=window_seconds, quantile=quantile
        )

    return {
        "requests": render(promql.REQUEST_RATE),
        "errors": render(promql.ERROR_RATE),
        "p50": render(promql.LATENCY_QUANTILE, 0.5),
        "p99": render(promql.LATENCY_QUANTILE, 0.99),
    }


def matrix_by_version(result: Sequence[Mapping[str, Any]]) -> dict[str, Points]:
    """A range query's matrix -> version -> [(unix time, value)], NaN and infinities left out."""
    out: dict[str, Points] = {}
    for series in result:
        version = str(series.get("metric", {}).get("destination_version", "unknown"))
        points = out.setdefault(version, [])
        for stamp, text in series.get("values") or ():
            value = float(text)
            if math.isfinite(value):
                points.append((float(stamp), value))
    for points in out.values():
        points.sort()
    return out


def _success(requests: Points, errors: Points) -> Points:
    """Percent of requests that were not 5xx, at each time that had requests."""
    failed = dict(errors)
    return [(t, 100.0 * (1.0 - min(failed.get(t, 0.0), rate) / rate)) for t, rate in requests if rate > 0]


def charts(answers: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, Points]]:
    """The four charts, each version -> points, from the matrices of :func:`chart_queries`."""
    requests = matrix_by_version(answers.get("requests", ()))
    errors = matrix_by_version(answers.get("errors", ()))
    return {
        "requestRate": requests,
        "successRate": {v: _success(points, errors.get(v, [])) for v, points in requests.items()},
        "latencyP50Ms": matrix_by_version(answers.get("p50", ())),
        "latencyP99Ms": matrix_by_version(answers.get("p99", ())),
    }
