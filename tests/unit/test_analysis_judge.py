"""The judge: clearly bad canaries fail fast, good ones pass, shared bursts and missing data never fail or pass."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from istio_canary.analysis import judge
from istio_canary.analysis.counts import Counts
from istio_canary.models.analysis import AnalysisSpec, Verdict

BOUNDS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, math.inf)
# Cumulative fraction of requests at or under each bound: median ~20 ms, p99 ~60 ms.
FAST = (0.0, 0.0, 0.0, 0.07, 0.68, 0.974, 0.9997, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
# The same service 200 ms slower.
SLOW = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.6, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0)
SPEC = AnalysisSpec()


def counts(requests: float, errors: float = 0.0, shape: tuple[float, ...] = FAST) -> Counts:
    return Counts(
        requests=requests,
        errors=errors,
        buckets=tuple((le, requests * f) for le, f in zip(BOUNDS, shape, strict=True)),
    )


def sampled(rng: random.Random, *, requests: int, error_rate: float) -> Counts:
    errors = sum(rng.random() < error_rate for _ in range(requests))
    return counts(requests, errors)


def test_a_canary_with_20_percent_errors_against_stable_at_a_tenth_of_a_percent_fails_within_a_handful_of_errors() -> (
    None
):
    rng = random.Random(7)
    stable_requests = stable_errors = canary_errors = 0
    for canary_requests in range(1, 201):  # one canary request (and nine stable ones) at a time
        canary_errors += rng.random() < 0.2
        for _ in range(9):
            stable_requests += 1
            stable_errors += rng.random() < 0.001
        verdict = judge.compare(
            stable=counts(stable_requests, stable_errors),
            canary=counts(canary_requests, canary_errors),
            spec=SPEC,
        ).verdict
        if verdict is not Verdict.INCONCLUSIVE:
            break
    assert verdict is Verdict.FAIL
    assert canary_errors <= 6


def test_a_good_canary_passes_once_both_versions_have_served_enough_requests() -> None:
    result = judge.compare(stable=counts(9000, 9), canary=counts(1000, 1), spec=SPEC)
    assert result.verdict is Verdict.PASS
    assert "within tolerance" in result.reason


def test_a_good_canary_is_inconclusive_before_min_requests() -> None:
    spec = AnalysisSpec(min_requests=50)
    result = judge.compare(stable=counts(900), canary=counts(40), spec=spec)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "40 of 50 requests" in result.reason


def test_a_service_wide_burst_that_fails_a_fifth_of_both_versions_requests_does_not_fail_the_canary() -> None:
    result = judge.compare(stable=counts(9000, 1800), canary=counts(1000, 200), spec=SPEC)
    assert result.verdict is not Verdict.FAIL


def test_the_same_canary_errors_fail_it_when_stable_is_healthy() -> None:
    result = judge.compare(stable=counts(9000, 9), canary=counts(1000, 200), spec=SPEC)
    assert result.verdict is Verdict.FAIL
    assert "errors" in result.reason


@pytest.mark.parametrize("idle", ["stable", "canary"])
def test_a_version_without_requests_is_no_data(idle: str) -> None:
    busy, empty = counts(1000, 500), Counts()
    stable, canary = (empty, busy) if idle == "stable" else (busy, empty)
    result = judge.compare(stable=stable, canary=canary, spec=SPEC)
    assert result.verdict is Verdict.NO_DATA
    assert idle in result.reason


def test_requests_without_a_latency_histogram_never_pass() -> None:
    result = judge.compare(
        stable=Counts(requests=90000, errors=0), canary=Counts(requests=10000, errors=0), spec=SPEC
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no latency histogram" in result.reason


def test_a_canary_200_ms_slower_fails_on_latency() -> None:
    result = judge.compare(stable=counts(900), canary=counts(100, shape=SLOW), spec=SPEC)
    assert result.verdict is Verdict.FAIL
    assert "slower" in result.reason
    assert result.canary_latency_ms is not None and result.stable_latency_ms is not None
    assert result.canary_latency_ms - result.stable_latency_ms > SPEC.max_latency_increase_ms


def test_a_slower_canary_within_the_latency_tolerance_is_not_failed() -> None:
    spec = AnalysisSpec(max_latency_increase_ms=1000)
    result = judge.compare(stable=counts(9000), canary=counts(1000, shape=SLOW), spec=spec)
    assert result.verdict is Verdict.PASS


def test_a_canary_slightly_worse_than_stable_but_within_the_error_tolerance_is_not_failed() -> None:
    result = judge.compare(stable=counts(90000, 90), canary=counts(10000, 30), spec=SPEC)
    assert result.verdict is Verdict.PASS


def test_the_check_result_carries_what_was_measured() -> None:
    result = judge.compare(stable=counts(9000, 9), canary=counts(1000, 200), spec=SPEC)
    entry = result.check_result(time="2026-01-01T00:00:00Z", step=1, weight=10)
    assert entry.verdict is Verdict.FAIL
    assert (entry.stable_requests, entry.canary_errors) == (9000, 200)
    assert entry.to_wire()["canaryErrors"] == 200


@settings(max_examples=200, deadline=None)
@given(
    stable_requests=st.integers(min_value=0, max_value=5000),
    canary_requests=st.integers(min_value=0, max_value=5000),
    data=st.data(),
)
def test_no_data_and_too_few_requests_never_pass(stable_requests: int, canary_requests: int,
                                                   data: st.DataObject) -> None:
    spec = AnalysisSpec(min_requests=100)
    stable_errors = data.draw(st.integers(min_value=0, max_value=stable_requests))
    canary_errors = data.draw(st.integers(min_value=0, max_value=canary_requests))
    result = judge.compare(
        stable=counts(stable_requests, stable_errors),
        canary=counts(canary_requests, canary_errors),
        spec=spec,
    )
    if min(stable_requests, canary_requests) == 0:
        assert result.verdict is Verdict.NO_DATA
    elif min(stable_requests, canary_requests) < spec.min_requests:
        assert result.verdict is not Verdict.PASS


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), burst=st.floats(min_value=0.0, max_value=0.6),
       share=st.sampled_from([0.1, 0.3, 0.5]))
def test_a_canary_as_good_as_stable_is_not_failed_whatever_both_error_rates_are(
    seed: int, burst: float, share: float
) -> None:
    rng = random.Random(seed)
    total = 2000
    result = judge.compare(
        stable=sampled(rng, requests=round(total * (1 - share)), error_rate=0.001 + burst),
        canary=sampled(rng, requests=round(total * share), error_rate=0.001 + burst),
        spec=SPEC,
    )
    assert result.verdict is not Verdict.FAIL


def test_false_rollbacks_of_a_good_canary_stay_rare_over_many_looks() -> None:
    rng = random.Random(11)
    rollbacks = 0
    for _ in range(200):
        stable, canary = [0, 0], [0, 0]
        for _look in range(30):
            for version, n in ((stable, 90), (canary, 10)):
                version[0] += n
                version[1] += sum(rng.random() < 0.02 for _ in range(n))
            verdict = judge.compare(stable=counts(stable[0], stable[1]),
                                     canary=counts(canary[0], canary[1]), spec=SPEC).verdict
            if verdict is Verdict.FAIL:
                rollbacks += 1
                break
    assert rollbacks <= 2
