"""Histogram arithmetic matches PromQL's histogram_quantile."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from istio_canary.analysis import counts

BUCKETS = ((10.0, 50.0), (100.0, 90.0), (1000.0, 100.0), (math.inf, 100.0))


def test_the_median_is_interpolated_inside_its_bucket_from_zero() -> None:
    assert counts.quantile(BUCKETS, 0.5) == 10.0
    assert counts.quantile(BUCKETS, 0.25) == 5.0


def test_a_quantile_in_the_infinite_bucket_is_the_highest_finite_bound() -> None:
    tail = ((10.0, 50.0), (math.inf, 100.0))
    assert counts.quantile(tail, 0.99) == 10.0


def test_an_empty_histogram_has_no_quantile() -> None:
    assert counts.quantile((), 0.5) is None
    assert counts.quantile(((10.0, 0.0), (math.inf, 0.0)), 0.5) is None


def test_the_bucket_bound_holding_p99_is_its_upper_le() -> None:
    assert counts.quantile_bucket_bound(BUCKETS, 0.99) == 1000.0
    assert counts.quantile_bucket_bound(BUCKETS, 0.9) == 100.0


def test_requests_above_a_bucket_bound_are_counted_exactly() -> None:
    assert counts.count_above(BUCKETS, 100.0) == 10.0
    assert counts.count_above(BUCKETS, 10.0) == 50.0


def test_bucket_maps_from_prometheus_are_sorted_and_never_decrease() -> None:
    built = counts.Counts.from_bucket_map(
        requests=10, errors=1, buckets={math.inf: 10.0, 100.0: 9.5, 10.0: 9.7}
    )
    assert built.buckets == ((10.0, 9.7), (100.0, 9.7), (math.inf, 10.0))


def test_fractional_counts_from_increase_round_to_whole_requests_and_errors() -> None:
    assert counts.Counts(requests=99.6, errors=120.2).whole() == (100, 100)


@given(q=st.floats(min_value=0.01, max_value=0.99))
def test_the_count_above_the_q_quantile_is_the_rest_of_the_requests(q: float) -> None:
    at = counts.quantile(BUCKETS, q)
    assert at is not None
    assert math.isclose(counts.count_above(BUCKETS, at), (1 - q) * 100.0, abs_tol=1e-6)
