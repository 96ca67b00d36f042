"""Summaries of measured values."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["percentiles"]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """n, mean, p50/p95/p99 and max of ``values``; NaN when there are none.

    The percentiles are ``statistics.quantiles`` with the inclusive method: the measured values
    are the whole population, and a percentile between two of them is interpolated.
    """
    if not values:
        nan = float("nan")
        return {"n": 0, "mean": nan, "p50": nan, "p95": nan, "p99": nan, "max": nan}
    ordered = sorted(values)
    # quantiles() needs two points; one value is every percentile of itself.
    cuts = statistics.quantiles(ordered * 2 if len(ordered) == 1 else ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered),
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "max": ordered[-1],
    }
