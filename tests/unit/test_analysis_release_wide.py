"""One test over the whole release: evidence carried across steps and restarts, the whole histogram, the ramp."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from statistics import NormalDist

import pytest
from istio_canary.analysis import evidence, judge, latency, progression
from istio_canary.analysis.counts import Counts
from istio_canary.analysis.runner import query_window
from istio_canary.models.analysis import AnalysisSpec, AnalysisStatus, Evidence, Verdict

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ISTIO = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, math.inf)
DECADES = (1, 10, 100, 1000, 10000, math.inf)


def lognormal(requests: float, *, median_ms: float, sigma: float, bounds: tuple[float, ...] = ISTIO,
              extra_ms: float = 0.0, errors: float = 0.0) -> Counts:
    """Expected bucket counts of a log-normal latency (plus ``extra_ms``), as Prometheus would show them."""
    def below(le: float) -> float:
        if math.isinf(le):
            return 1.0
        return 0.0 if le <= extra_ms else NormalDist().cdf(math.log((le - extra_ms) / median_ms) / sigma)
    return Counts(requests=requests, errors=errors, buckets=tuple((le, requests * below(le)) for le in bounds))


def test_a_pass_carries_the_step_evidence_into_status_and_history_keeps_none_of_it() -> None:
    spec = AnalysisSpec(steps=[20, 50])
    stable, canary = lognormal(9000, median_ms=20, sigma=0.5), lognormal(1000, median_ms=20, sigma=0.5)
    result = judge.compare(stable=stable, canary=canary, spec=spec, step=0)
    assert result.verdict is Verdict.PASS and result.evidence is not None
    status = AnalysisStatus(step=0, weight=20, step_started_at=NOW.isoformat())
    moved = progression.advance(spec=spec, status=status, check=result.check_result(
        time=NOW.isoformat(), step=0, weight=20), now=NOW)
    assert moved.status.step == 1 and moved.status.evidence == result.evidence
    assert moved.status.history[-1].evidence is None
    # A restart reads the status back from the API server: the carried evidence is the same.
    wire = moved.status.to_wire()
    assert AnalysisStatus.model_validate(wire).evidence == result.evidence


def test_errors_spread_over_two_steps_fail_the_canary_where_each_step_alone_would_not() -> None:
    spec = AnalysisSpec(steps=[20, 50], max_error_rate_increase=0.005)
    stable_one = lognormal(4000, median_ms=20, sigma=0.5, errors=2)
    canary_one = lognormal(1000, median_ms=20, sigma=0.5, errors=5)
    stable_two = lognormal(2000, median_ms=20, sigma=0.5, errors=1)
    canary_two = lognormal(2000, median_ms=20, sigma=0.5, errors=12)
    first = judge.compare(stable=stable_one, canary=canary_one, spec=spec, step=0)
    alone = judge.compare(stable=stable_two, canary=canary_two, spec=spec, step=1)
    assert first.verdict is not Verdict.FAIL and alone.verdict is not Verdict.FAIL
    assert first.evidence is not None
    together = judge.compare(stable=stable_two, canary=canary_two, spec=spec, step=1, carried=first.evidence)
    assert together.verdict is Verdict.FAIL
    assert together.error_evidence > max(first.error_evidence, alone.error_evidence)


def test_evidence_of_earlier_steps_adds_up_component_by_component() -> None:
    spec = AnalysisSpec()
    a = judge.compare(stable=lognormal(900, median_ms=20, sigma=0.5, errors=1),
                      canary=lognormal(100, median_ms=20, sigma=0.5, errors=2), spec=spec).evidence
    b = judge.compare(stable=lognormal(500, median_ms=20, sigma=0.5, errors=3),
                      canary=lognormal(500, median_ms=30, sigma=0.5), spec=spec).evidence
    assert a is not None and b is not None
    both = evidence.combine(a, b)
    assert both.errors_worse == pytest.approx([x + y for x, y in zip(a.errors_worse, b.errors_worse, strict=True)])
    assert both.canary_requests == a.canary_requests + b.canary_requests
    assert evidence.combine(None, b) == b


@pytest.mark.parametrize("bounds", [ISTIO, DECADES], ids=["istio-buckets", "decade-buckets"])
@pytest.mark.parametrize("median_ms", [20.0, 50.0, 80.0])
def test_a_canary_as_fast_as_stable_passes_on_latency_whatever_the_bucket_layout(
    bounds: tuple[float, ...], median_ms: float
) -> None:
    # median 50 ms, sigma 0.7: p99 about 255 ms, just above Istio's 250 ms bound.
    spec = AnalysisSpec(steps=[10, 50], latency_quantile=0.99, max_latency_increase_ms=50)
    stable = lognormal(9000, median_ms=median_ms, sigma=0.7, bounds=bounds)
    canary = lognormal(1000, median_ms=median_ms, sigma=0.7, bounds=bounds)
    result = judge.compare(stable=stable, canary=canary, spec=spec)
    assert result.verdict is Verdict.PASS, result.reason


def test_a_canary_slower_in_the_tail_only_is_caught() -> None:
    spec = AnalysisSpec()
    stable = lognormal(9000, median_ms=20, sigma=0.47)
    fast = lognormal(980, median_ms=20, sigma=0.47)
    slow = lognormal(20, median_ms=20, sigma=0.47, extra_ms=1500)  # one request in fifty takes 1.5 s longer
    canary = Counts(requests=1000, buckets=tuple(
        (le, a + b) for (le, a), (_le, b) in zip(fast.buckets, slow.buckets, strict=True)))
    result = judge.compare(stable=stable, canary=canary, spec=spec)
    assert result.verdict is Verdict.FAIL
    assert "slower" in result.reason


def test_the_slower_test_is_a_test_martingale_for_a_canary_no_slower_than_stable() -> None:
    rng = random.Random(5)
    level = math.log(1 / 0.05)
    crossed = 0
    probabilities = [b - a for a, b in zip((0.0, *[NormalDist().cdf(math.log(le / 20) / 0.6) for le in ISTIO[:-1]]),
                                           [*[NormalDist().cdf(math.log(le / 20) / 0.6) for le in ISTIO[:-1]], 1.0],
                                           strict=True)]
    for _run in range(200):
        stable_n, canary_n = [0] * len(ISTIO), [0] * len(ISTIO)
        for _look in range(20):
            for n, count in ((stable_n, 45), (canary_n, 5)):
                for _ in range(count):
                    n[rng.choices(range(len(ISTIO)), probabilities)[0]] += 1
            cumulative = [(le, float(sum(stable_n[: i + 1]))) for i, le in enumerate(ISTIO)]
            canary_cumulative = [(le, float(sum(canary_n[: i + 1]))) for i, le in enumerate(ISTIO)]
            ratios = latency.slower_ratios(tuple(cumulative), tuple(canary_cumulative))
            if evidence.mixed(Evidence(latency_worse=list(ratios)), "latency_worse") >= level:
                crossed += 1
                break
    assert crossed <= 0.05 * 200


def test_the_ramp_asks_each_step_for_a_growing_part_of_the_evidence_and_the_last_for_all() -> None:
    spec = AnalysisSpec(steps=[10, 20, 30, 40, 50], probe_weight=2)
    assert spec.weights() == [2, 10, 20, 30, 40, 50] and spec.has_probe()
    shares = [judge.pass_share(spec, step) for step in range(6)]
    assert shares[0] is None  # the probe: minRequests and no failure
    numbers = [s for s in shares[1:] if s is not None]
    assert numbers == sorted(numbers) and numbers[-1] == 1.0 and numbers[0] == pytest.approx(10 / 150)
    assert judge.pass_share(spec, None) == 1.0
    assert not AnalysisSpec(steps=[20, 50], probe_weight=20).has_probe()


def test_the_probe_passes_on_min_requests_without_a_failure_and_a_grossly_bad_canary_fails_in_it() -> None:
    spec = AnalysisSpec(steps=[10, 50], probe_weight=2, min_requests=20)
    good = judge.compare(stable=lognormal(1000, median_ms=20, sigma=0.5, errors=1),
                         canary=lognormal(20, median_ms=20, sigma=0.5), spec=spec, step=0)
    assert good.verdict is Verdict.PASS
    bad = judge.compare(stable=lognormal(1000, median_ms=20, sigma=0.5, errors=1),
                        canary=lognormal(8, median_ms=20, sigma=0.5, errors=3), spec=spec, step=0)
    assert bad.verdict is Verdict.FAIL
    last = judge.compare(stable=lognormal(1000, median_ms=20, sigma=0.5, errors=1),
                         canary=lognormal(20, median_ms=20, sigma=0.5), spec=spec, step=2)
    assert last.verdict is Verdict.INCONCLUSIVE  # 20 requests are not the whole release's evidence


def test_with_a_scrape_interval_the_window_waits_for_two_scrapes_and_covers_whole_ones() -> None:
    spec = AnalysisSpec(scrape_interval_seconds=5)
    assert query_window(spec, seconds=9.9) is None
    assert query_window(spec, seconds=10) == 10
    assert query_window(spec, seconds=11) == 15
    assert query_window(AnalysisSpec(), seconds=3.7) == 3
