"""Always-valid evidence: grows with what it tests for, and rarely crosses 1/alpha when the null holds."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from istio_canary.analysis import sequential


def test_no_trials_are_no_evidence() -> None:
    assert sequential.log_evidence_above(events=0, trials=0, p0=0.1) == 0.0
    assert sequential.log_evidence_below(events=0, trials=0, p0=0.1) == 0.0


def test_each_event_adds_evidence_that_the_proportion_is_above_the_bound() -> None:
    values = [sequential.log_evidence_above(events=k, trials=10, p0=0.1) for k in range(11)]
    assert values == sorted(values)
    assert values[5] > math.log(20)


def test_each_trial_without_an_event_adds_evidence_that_the_proportion_is_below_the_bound() -> None:
    values = [sequential.log_evidence_below(events=0, trials=n, p0=0.01) for n in (10, 100, 1000)]
    assert values == sorted(values)
    assert values[-1] > math.log(20)


def test_a_bound_of_one_is_always_met_and_a_bound_of_zero_never() -> None:
    assert sequential.log_evidence_below(events=3, trials=3, p0=1.0) == math.inf
    assert sequential.log_evidence_below(events=0, trials=1000, p0=0.0) == 0.0


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="events <= trials"):
        sequential.log_evidence_above(events=3, trials=2, p0=0.5)


@pytest.mark.parametrize("grid", [sequential.WORSE_ODDS_RATIOS, sequential.BETTER_ODDS_RATIOS])
def test_mixture_weights_sum_to_one_so_the_mixture_is_a_test_martingale(
    grid: tuple[tuple[float, float], ...]
) -> None:
    assert math.isclose(sum(weight for _, weight in grid), 1.0)


@given(p0=st.floats(min_value=0.01, max_value=0.9), trials=st.integers(min_value=1, max_value=300),
       data=st.data())
def test_evidence_above_grows_with_events_at_a_fixed_number_of_trials(
    p0: float, trials: int, data: st.DataObject
) -> None:
    events = data.draw(st.integers(min_value=0, max_value=trials - 1))
    assert sequential.log_evidence_above(events=events + 1, trials=trials, p0=p0) >= (
        sequential.log_evidence_above(events=events, trials=trials, p0=p0)
    )


def test_under_the_null_the_evidence_crosses_one_over_alpha_in_at_most_alpha_of_paths() -> None:
    rng = random.Random(3)
    alpha, p0, paths, crossed = 0.05, 0.1, 400, 0
    for _ in range(paths):
        events = 0
        for trial in range(1, 301):
            events += rng.random() < p0
            if sequential.log_evidence_above(events=events, trials=trial, p0=p0) >= math.log(1 / alpha):
                crossed += 1
                break
    assert crossed / paths <= alpha


def test_a_null_proportion_a_hair_below_one_gives_finite_evidence() -> None:
    # A canary share of 1 - 6e-14 (one stable request against 1.7e13): 1 - p1 rounds to 0 if
    # the ratios are formed naively, and log(0) raised.
    p0 = 17575022936079.0 / (17575022936079.0 + 1.0)
    ratios = sequential.log_likelihood_ratios(events=1, trials=1, p0=p0, grid=sequential.WORSE_ODDS_RATIOS)
    assert all(math.isfinite(r) for r in ratios)
    # The formula agrees with the naive one where the naive one works.
    p0, r = 0.2, 3.0
    p1 = r * p0 / (1 - p0 + r * p0)
    naive = 2 * math.log(p1 / p0) + 8 * math.log((1 - p1) / (1 - p0))
    (fast,) = sequential.log_likelihood_ratios(events=2, trials=10, p0=p0, grid=((r, 1.0),))
    assert fast == pytest.approx(naive, rel=1e-12)
