"""What the judge reads: request, error and latency-bucket counts of one version.

Counts are cumulative since the current step started, as Prometheus returns them from
``increase(...[window])``. Prometheus extrapolates ``increase`` to the window's edges, so
the numbers are floats; the tests in :mod:`istio_canary.analysis.sequential` need whole
events, and :meth:`Counts.whole` rounds them.

Latency histograms follow Prometheus' conventions: ``buckets`` holds ``(le, count)`` pairs,
``count`` being the number of requests that took at most ``le`` milliseconds (cumulative),
ascending in ``le``, the last one ``le = +Inf``. Quantiles are interpolated linearly inside
a bucket exactly as PromQL's ``histogram_quantile`` does, so the numbers in a status match
what a user sees in Grafana.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

__all__ = ["Counts", "count_above", "histogram_total", "quantile", "quantile_bucket_bound"]

Buckets = tuple[tuple[float, float], ...]


@dataclasses.dataclass(frozen=True)
class Counts:
    """Requests, 5xx errors and latency buckets of one version since the step started."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: Buckets = ()
    """``(le_ms, cumulative_count)`` ascending, ending with ``le = inf``; empty when unknown."""

    @classmethod
    def from_bucket_map(cls, *, requests: float, errors: float, buckets: Mapping[float, float]) -> Counts:
        """Build from ``{le: cumulative_count}`` in any order (what a PromQL result gives)."""
        return cls(requests=requests, errors=errors, buckets=normalise_buckets(buckets.items()))

    def whole(self) -> tuple[int, int]:
        """Requests and errors as whole numbers, errors never above requests."""
        requests = max(0, round(self.requests))
        return requests, min(requests, max(0, round(self.errors)))


def normalise_buckets(pairs: Iterable[tuple[float, float]]) -> Buckets:
    """Sort by ``le`` and repair what ``increase`` breaks: counts must not fall as ``le`` grows.

    Each bucket series is extrapolated on its own, so a higher bucket can come out a hair
    below a lower one; PromQL's ``histogram_quantile`` repairs the same way (a running max).
    """
    ordered = sorted((float(le), max(0.0, float(count))) for le, count in pairs)
    repaired: list[tuple[float, float]] = []
    running = 0.0
    for le, count in ordered:
        running = max(running, count)
        repaired.append((le, running))
    return tuple(repaired)


def histogram_total(buckets: Buckets) -> float:
    """Requests the histogram saw (the ``+Inf`` bucket), 0 when it is empty or has no ``+Inf``."""
    if not buckets or not math.isinf(buckets[-1][0]):
        return 0.0
    return buckets[-1][1]


def quantile(buckets: Buckets, q: float) -> float | None:
    """The ``q``-quantile in ms as ``histogram_quantile`` computes it; None without data.

    The lowest bucket interpolates from 0; a quantile in the ``+Inf`` bucket returns the
    highest finite bound, as PromQL does.
    """
    total = histogram_total(buckets)
    if total <= 0:
        return None
    rank = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_le
            if count == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count)
        lower_le, lower_count = le, count
    return lower_le


def quantile_bucket_bound(buckets: Buckets, q: float) -> float | None:
    """The upper bound ``le`` of the bucket that holds the ``q``-quantile; None without data."""
    total = histogram_total(buckets)
    if total <= 0:
        return None
    for le, count in buckets:
        if count >= q * total:
            return le
    return None


def count_above(buckets: Buckets, bound_ms: float) -> float:
    """Requests slower than ``bound_ms``, interpolating linearly inside its bucket.

    The interpolation is the one ``histogram_quantile`` uses, so ``count_above(b, quantile(b, q))``
    is ``(1 - q) * total``: "the canary's p99 is below T" and "at most 1% of the canary's
    requests are above T" are the same statement.
    """
    total = histogram_total(buckets)
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if bound_ms <= le:
            if math.isinf(le):
                return total - lower_count
            fraction = (bound_ms - lower_le) / (le - lower_le) if le > lower_le else 1.0
            below = lower_count + (count - lower_count) * max(0.0, fraction)
            return max(0.0, total - below)
        lower_le, lower_count = le, count
    return 0.0
