"""Latency evidence from Istio's whole histogram, one stretch of requests at a time. (pure)

Two tests, each returning one log likelihood ratio per alternative (see
:func:`istio_canary.analysis.sequential.log_likelihood_ratios`), so that the caller can add
them up over the steps of a release and mix them only at the end.

* **Slower** (:func:`slower_ratios`), a test of stochastic order. "The canary is no slower"
  means that at every latency ``b`` the canary's share of requests slower than ``b`` is at
  most stable's. For each tail in :data:`TAILS` (the slowest half, tenth, hundredth and
  thousandth of both versions' requests together), ``b`` is the bucket bound holding that
  quantile, and given that
  ``n`` requests of both versions were slower than ``b``, the canary's are Binomial(n, pi),
  ``pi`` no larger than the canary's share of requests when it is no slower: the conditional
  test of the judge's errors, on slow requests. Mixing over the tails (each a valid test of
  its own part of the null) watches the body and the tail of the histogram at once: a canary
  slower for one request in fifty only is caught in the thousandth tail, whatever the bucket
  layout. Counts above a bucket bound are observed, never interpolated.
* **Within the tolerance** (:func:`within_ratios`): evidence against "the canary is at least
  ``tolerance_ms`` slower", half from each of two statements of it:

  - *relative*: a canary shifted by the tolerance would have, above the lower bound ``b`` of the
    bucket holding the quantile of both versions' requests, the share stable has above
    ``b - tolerance_ms``: the ratio
    ``r1`` of those two tails of stable's is the alternative to reject, by the same conditional
    test. Both versions' slow requests are counted above a bucket bound, so a p99 that sits next
    to a bucket bound costs nothing (the one-bound test before it held such canaries forever);
  - *absolute*: at most ``1 - q`` of the canary's requests are slower than stable's quantile plus
    the tolerance (interpolated as ``histogram_quantile`` does), which decides fast when the
    tolerance is large against the histogram's buckets.

Everything here is pure and takes whole-number counts from :class:`~istio_canary.analysis.counts.Counts`.
"""

from __future__ import annotations

import math

from istio_canary.analysis import counts as counts_
from istio_canary.analysis import sequential

__all__ = ["SLOWER_GRID", "TAILS", "WITHIN_GRID", "slower_ratios", "within_ratios"]

TAILS: tuple[float, ...] = (0.5, 0.1, 0.01, 0.001)
"""Stable's tails watched by the slower test: the bucket bound holding stable's median, p90, p99, p99.9."""

SLOWER_GRID: tuple[tuple[float, float], ...] = tuple(
    (odds_ratio, weight / len(TAILS)) for _tail in TAILS for odds_ratio, weight in sequential.WORSE_ODDS_RATIOS
)
"""The slower test's mixture: each tail's alternatives, tail-major; weights sum to 1."""

WITHIN_GRID: tuple[tuple[float, float], ...] = tuple(
    (odds_ratio, weight / 2) for _half in range(2) for odds_ratio, weight in sequential.BETTER_ODDS_RATIOS
)
"""The within test's mixture: the relative statement's alternatives, then the absolute one's."""


def slower_ratios(stable: counts_.Buckets, canary: counts_.Buckets) -> tuple[float, ...]:
    """Log likelihood ratios, per tail and alternative, that the canary is slower than stable."""
    stable_total = round(counts_.histogram_total(stable))
    canary_total = round(counts_.histogram_total(canary))
    if stable_total <= 0 or canary_total <= 0:
        return tuple(0.0 for _ in SLOWER_GRID)
    share = canary_total / (canary_total + stable_total)
    pooled = _pooled(stable, canary)
    ratios: list[float] = []
    for tail in TAILS:
        bound = counts_.quantile_bucket_bound(pooled, 1.0 - tail)
        stable_slow = canary_slow = 0
        if bound is not None and not math.isinf(bound):
            stable_slow = min(stable_total, round(counts_.count_above(stable, bound)))
            canary_slow = min(canary_total, round(counts_.count_above(canary, bound)))
        ratios.extend(
            sequential.log_likelihood_ratios(
                events=canary_slow, trials=canary_slow + stable_slow, p0=share, grid=sequential.WORSE_ODDS_RATIOS
            )
        )
    return tuple(ratios)


def within_ratios(
    stable: counts_.Buckets, canary: counts_.Buckets, *, quantile: float, tolerance_ms: float
) -> tuple[float, ...]:
    """Log likelihood ratios, per alternative, that the canary is less than ``tolerance_ms`` slower."""
    return (*_relative(stable, canary, quantile=quantile, tolerance_ms=tolerance_ms),
            *_absolute(stable, canary, quantile=quantile, tolerance_ms=tolerance_ms))


def _relative(
    stable: counts_.Buckets, canary: counts_.Buckets, *, quantile: float, tolerance_ms: float
) -> tuple[float, ...]:
    nothing = tuple(0.0 for _ in sequential.BETTER_ODDS_RATIOS)
    stable_total = round(counts_.histogram_total(stable))
    canary_total = round(counts_.histogram_total(canary))
    bound = _bound_below_quantile(_pooled(stable, canary), quantile)
    if bound is None or stable_total <= 0 or canary_total <= 0:
        return nothing
    stable_slow = min(stable_total, round(counts_.count_above(stable, bound)))
    if stable_slow <= 0:
        return nothing
    if bound <= tolerance_ms:
        shifted = counts_.histogram_total(stable)
    else:
        shifted = counts_.count_above(stable, bound - tolerance_ms)
    ratio = max(1.0, shifted / counts_.count_above(stable, bound))
    share = canary_total / (canary_total + stable_total)
    worse = ratio * share / (1.0 - share + ratio * share)
    canary_slow = min(canary_total, round(counts_.count_above(canary, bound)))
    return sequential.log_likelihood_ratios(
        events=canary_slow, trials=canary_slow + stable_slow, p0=worse, grid=sequential.BETTER_ODDS_RATIOS
    )


def _absolute(
    stable: counts_.Buckets, canary: counts_.Buckets, *, quantile: float, tolerance_ms: float
) -> tuple[float, ...]:
    stable_ms = counts_.quantile(stable, quantile)
    canary_total = round(counts_.histogram_total(canary))
    if stable_ms is None or canary_total <= 0:
        return tuple(0.0 for _ in sequential.BETTER_ODDS_RATIOS)
    slower = min(canary_total, round(counts_.count_above(canary, stable_ms + tolerance_ms)))
    return sequential.log_likelihood_ratios(
        events=slower, trials=canary_total, p0=1.0 - quantile, grid=sequential.BETTER_ODDS_RATIOS
    )


def _pooled(stable: counts_.Buckets, canary: counts_.Buckets) -> counts_.Buckets:
    """Both versions' requests in one histogram: where the tests put their bounds.

    A bound chosen from stable's counts alone would be biased (the bucket holding stable's
    p99.9 has, by its choice, no stable request above it, so any canary request there would look
    like evidence). Given the pooled counts, a canary no different from stable still splits
    each bucket with stable by its share of requests, so a bound chosen from them keeps the
    conditional tests exact. Histograms with different layouts fall back to stable's.
    """
    if [le for le, _c in stable] != [le for le, _c in canary]:
        return stable
    return tuple((le, a + b) for (le, a), (_le, b) in zip(stable, canary, strict=True))


def _bound_below_quantile(buckets: counts_.Buckets, quantile: float) -> float | None:
    """The lower bound of the bucket holding the quantile (its upper one if that is the first bucket).

    Stable has at least ``1 - quantile`` of its requests above it: enough slow requests to
    compare, however the buckets are laid out. None when the bucket is the ``+Inf`` one.
    """
    upper = counts_.quantile_bucket_bound(buckets, quantile)
    if upper is None:
        return None
    lower = 0.0
    for le, _count in buckets:
        if le >= upper:
            break
        lower = le
    chosen = lower if lower > 0 else upper
    return None if math.isinf(chosen) else chosen
