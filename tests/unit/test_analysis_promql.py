"""PromQL templates: per version, destination-reported, for one service in one namespace."""

from __future__ import annotations

import pytest
from istio_canary.analysis import promql

COUNT_TEMPLATES = [promql.REQUEST_INCREASE, promql.ERROR_INCREASE, promql.BUCKET_INCREASE,
                   promql.REQUEST_RATE, promql.ERROR_RATE]


@pytest.mark.parametrize("template", COUNT_TEMPLATES)
def test_every_query_groups_by_version_and_filters_the_service(template: object) -> None:
    assert isinstance(template, type(promql.REQUEST_RATE))
    query = promql.render(template, namespace="bookinfo", service="reviews", window_seconds=90)
    assert "by (destination_version" in query
    assert 'reporter="destination"' in query
    assert 'destination_workload_namespace="bookinfo"' in query
    assert 'destination_service_name="reviews"' in query
    assert "[90s]" in query
    assert "$" not in query


def test_error_queries_count_5xx_responses_only() -> None:
    query = promql.render(promql.ERROR_INCREASE, namespace="ns", service="svc", window_seconds=60)
    assert 'response_code=~"5.."' in query


def test_bucket_query_keeps_the_le_label_for_the_judge() -> None:
    query = promql.render(promql.BUCKET_INCREASE, namespace="ns", service="svc", window_seconds=60)
    assert "by (destination_version, le)" in query
    assert "istio_request_duration_milliseconds_bucket" in query


def test_latency_quantile_renders_the_quantile() -> None:
    query = promql.render(promql.LATENCY_QUANTILE, namespace="ns", service="svc",
                          window_seconds=60, quantile=0.99)
    assert query.startswith("histogram_quantile(0.99, ")


def test_a_quantile_must_be_given_exactly_to_the_quantile_template() -> None:
    with pytest.raises(ValueError, match="quantile"):
        promql.render(promql.LATENCY_QUANTILE, namespace="ns", service="svc", window_seconds=60)
    with pytest.raises(ValueError, match="quantile"):
        promql.render(promql.REQUEST_RATE, namespace="ns", service="svc", window_seconds=60,
                      quantile=0.5)


def test_label_values_are_escaped() -> None:
    query = promql.render(promql.REQUEST_RATE, namespace='a"b', service="c\\d", window_seconds=60)
    assert 'destination_workload_namespace="a\\"b"' in query
    assert 'destination_service_name="c\\\\d"' in query


def test_a_window_under_one_second_is_refused() -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        promql.render(promql.REQUEST_RATE, namespace="ns", service="svc", window_seconds=0)


def test_with_aliases_the_service_matcher_is_an_anchored_alternation_of_every_name() -> None:
    query = promql.render(promql.REQUEST_INCREASE, namespace="bookinfo", service="reviews", window_seconds=60,
                          aliases=("reviews-v1", "reviews-v2"))
    assert 'destination_service_name=~"reviews|reviews-v1|reviews-v2"' in query
    odd = promql.render(promql.REQUEST_RATE, namespace="ns", service="a.b", window_seconds=60, aliases=("c|d",))
    assert 'destination_service_name=~"a\\\\.b|c\\\\|d"' in odd
