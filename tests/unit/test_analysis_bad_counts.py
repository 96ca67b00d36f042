"""Counts that cannot be counts (NaN, infinite, negative, fractional increase() leftovers) never crash or pass."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from istio_canary.analysis import judge, progression
from istio_canary.analysis.counts import Counts
from istio_canary.models.analysis import AnalysisSpec, AnalysisStatus, CheckResult, Verdict

SPEC = AnalysisSpec(steps=[20, 50], min_requests=1)
BOUNDS = (5.0, 25.0, 100.0, 250.0, math.inf)
ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 0.3, 0.49, 0.5, 0.51, 1.2, -0.0, -1.0, math.nan, math.inf, -math.inf]),
)


def counts(requests: float, errors: float, buckets: tuple[float, ...]) -> Counts:
    return Counts(requests=requests, errors=errors, buckets=tuple(zip(BOUNDS, buckets, strict=True)))


def usable(c: Counts) -> bool:
    values = [c.requests, c.errors, *(n for _le, n in c.buckets)]
    return all(math.isfinite(v) and v >= 0 for v in values)


@settings(max_examples=400, deadline=None)
@given(
    stable=st.tuples(ANY_VALUE, ANY_VALUE, st.tuples(*[ANY_VALUE] * len(BOUNDS))),
    canary=st.tuples(ANY_VALUE, ANY_VALUE, st.tuples(*[ANY_VALUE] * len(BOUNDS))),
    step=st.sampled_from([None, 0, 1]),
)
def test_any_counts_get_a_verdict_and_unusable_ones_are_bad_data_never_a_pass(
    stable: tuple[float, float, tuple[float, ...]], canary: tuple[float, float, tuple[float, ...]], step: int | None
) -> None:
    stable_counts, canary_counts = counts(*stable), counts(*canary)
    result = judge.compare(stable=stable_counts, canary=canary_counts, spec=SPEC, step=step)
    if not (usable(stable_counts) and usable(canary_counts)):
        assert result.verdict is Verdict.BAD_DATA
        assert "not finite non-negative" in result.reason
    else:
        assert result.verdict is not Verdict.BAD_DATA
        assert all(math.isfinite(v) for v in (result.error_evidence, result.latency_evidence))


@settings(max_examples=200, deadline=None)
@given(
    stable_total=st.floats(min_value=0.01, max_value=0.49),
    canary_total=st.floats(min_value=0.01, max_value=0.49),
    stable_requests=st.floats(min_value=0.6, max_value=5.0),
    canary_requests=st.floats(min_value=0.6, max_value=5.0),
)
def test_histograms_of_less_than_half_a_request_each_are_no_histogram_whatever_the_request_counts(
    stable_total: float, canary_total: float, stable_requests: float, canary_requests: float
) -> None:
    # increase() at low traffic: the +Inf buckets both round to 0 while the requests round to 1 or more.
    stable = Counts(requests=stable_requests, buckets=((100.0, stable_total), (math.inf, stable_total)))
    canary = Counts(requests=canary_requests, buckets=((100.0, canary_total), (math.inf, canary_total)))
    result = judge.compare(stable=stable, canary=canary, spec=SPEC)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no latency histogram yet" in result.reason


def test_a_nan_count_is_bad_data_and_says_which_version() -> None:
    stable = counts(100, 0, (10, 80, 100, 100, 100))
    canary = counts(math.nan, 0, (10, 80, 100, 100, 100))
    result = judge.compare(stable=stable, canary=canary, spec=SPEC)
    assert result.verdict is Verdict.BAD_DATA
    assert "canary" in result.reason


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_bad_data_holds_like_no_data_then_rolls_back_after_the_no_data_timeout() -> None:
    spec = AnalysisSpec(steps=[20, 50], interval_seconds=10)  # timeout: 60 s
    status = AnalysisStatus(step=1, weight=50, step_started_at=NOW.isoformat())
    outcomes = []
    for seconds in range(0, 70, 10):
        at = NOW + timedelta(seconds=seconds)
        look = CheckResult(time=at.isoformat(), step=1, weight=50, verdict=Verdict.BAD_DATA, reason="NaN")
        moved = progression.advance(spec=spec, status=status, check=look, now=at)
        outcomes.append(moved.outcome)
        status = moved.status
    assert outcomes[:-1] == [progression.Outcome.HOLD] * 6
    assert outcomes[-1] is progression.Outcome.ROLLBACK
    assert status.step == 1 and status.last_verdict is Verdict.BAD_DATA
    assert "no usable data in Prometheus for 60 s" in progression.rollback_cause(spec=spec, status=status)
