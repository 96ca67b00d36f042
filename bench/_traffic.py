"""Synthetic Istio traffic for the blast-radius benchmark: seeded, standard library only.

Requests arrive as a Poisson process; between two looks (one scrape interval) each version
receives Poisson(rate * share * interval) requests, its share being the step's weight. A
request fails with the version's error rate (plus a service-wide burst while one lasts) and
takes a log-normal time (plus the version's added latency), counted into Istio's default
histogram buckets. Poisson thinning makes the counts of each latency bucket independent
Poisson variables, which keeps a run fast however high the traffic.
"""

from __future__ import annotations

import dataclasses
import math
import random
from statistics import NormalDist

from istio_canary.analysis.counts import Counts

__all__ = ["ISTIO_BUCKETS_MS", "Burst", "Latency", "Scenario", "Window", "simulate_interval"]

ISTIO_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000, math.inf,
)
"""Istio's default ``istio_request_duration_milliseconds`` bucket bounds."""

@dataclasses.dataclass(frozen=True)
class Latency:
    """A log-normal latency: ``median_ms`` at the median, ``sigma`` the spread of its logarithm."""

    median_ms: float = 20.0
    sigma: float = math.log(60.0 / 20.0) / NormalDist().inv_cdf(0.99)
    """Default: a service answering in 20 ms at the median and 60 ms at p99."""


AT_A_BUCKET_BOUND = Latency(median_ms=50.0, sigma=0.7)
"""p99 about 255 ms, just above Istio's 250 ms bucket bound: the layout that held good canaries forever."""


@dataclasses.dataclass(frozen=True)
class Burst:
    """A service-wide transient: every version fails ``extra_error_rate`` more for a while.

    With ``jitter``, the burst's strength changes every minute (uniformly between ``1 - jitter``
    and ``1 + jitter`` times ``extra_error_rate``), the same for both versions.
    """

    start_s: int
    duration_s: int
    extra_error_rate: float
    jitter: float = 0.0


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    rate_rps: float
    stable_error_rate: float = 0.001
    canary_error_rate: float = 0.001
    canary_extra_latency_ms: float = 0.0
    latency: Latency = Latency()
    burst: Burst | None = None
    rate_jitter: float = 0.0
    """The request rate changes every minute, uniformly within +-``rate_jitter`` of ``rate_rps``."""

    @property
    def canary_is_bad(self) -> bool:
        return self.canary_error_rate > self.stable_error_rate or self.canary_extra_latency_ms > 0

    def error_rate(self, *, canary: bool, t: int, seed: int = 0) -> float:
        rate = self.canary_error_rate if canary else self.stable_error_rate
        burst = self.burst
        if burst and burst.start_s <= t < burst.start_s + burst.duration_s:
            strength = 1.0 + burst.jitter * (2 * _minute_noise(seed, t, salt=1) - 1)
            rate = min(1.0, rate + burst.extra_error_rate * strength)
        return rate

    def rate_at(self, t: int, *, seed: int = 0) -> float:
        """Requests per second at ``t`` (the same for every policy of one seeded run)."""
        return self.rate_rps * (1.0 + self.rate_jitter * (2 * _minute_noise(seed, t, salt=2) - 1))


def _minute_noise(seed: int, t: int, *, salt: int) -> float:
    """A uniform number fixed by the run's seed and the minute: the same trace for every policy."""
    return random.Random(seed * 1_000_003 + (t // 60) * 7 + salt).random()


def bucket_probabilities(extra_latency_ms: float, latency: Latency = Latency()) -> tuple[float, ...]:
    """Probability that a request lands in each bucket (not cumulative)."""
    normal = NormalDist()
    cumulative = []
    for le in ISTIO_BUCKETS_MS:
        if math.isinf(le):
            cumulative.append(1.0)
        elif le <= extra_latency_ms:
            cumulative.append(0.0)
        else:
            cumulative.append(normal.cdf(math.log((le - extra_latency_ms) / latency.median_ms) / latency.sigma))
    return tuple(b - a for a, b in zip((0.0, *cumulative[:-1]), cumulative, strict=True))


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson variate: multiplication for small means, Hörmann's PTRS for large ones."""
    if lam <= 0:
        return 0
    if lam < 10:
        limit, k, product = math.exp(-lam), 0, rng.random()
        while product > limit:
            k += 1
            product *= rng.random()
        return k
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b) <= (
            -lam + k * loglam - math.lgamma(k + 1)
        ):
            return k


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial variate by skipping geometric gaps: O(n * min(p, 1 - p)) work."""
    if p <= 0 or n == 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    log_q = math.log1p(-p)
    count, position = 0, 0
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return count
        count += 1


@dataclasses.dataclass
class Window:
    """Running sums of one version's counts (cumulative buckets, as Prometheus keeps them)."""

    requests: int = 0
    errors: int = 0
    per_bucket: list[int] = dataclasses.field(default_factory=lambda: [0] * len(ISTIO_BUCKETS_MS))

    def add(self, other: Window) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.per_bucket = [a + b for a, b in zip(self.per_bucket, other.per_bucket, strict=True)]

    def counts(self) -> Counts:
        running, buckets = 0, []
        for le, n in zip(ISTIO_BUCKETS_MS, self.per_bucket, strict=True):
            running += n
            buckets.append((le, float(running)))
        return Counts(requests=float(self.requests), errors=float(self.errors), buckets=tuple(buckets))


def simulate_interval(
    rng: random.Random, *, mean_requests: float, error_rate: float, buckets: tuple[float, ...]
) -> Window:
    """One version's requests, errors and latency buckets during one scrape interval."""
    per_bucket = [poisson(rng, mean_requests * p) if p > 1e-12 else 0 for p in buckets]
    requests = sum(per_bucket)
    return Window(requests=requests, errors=binomial(rng, requests, error_rate), per_bucket=per_bucket)
