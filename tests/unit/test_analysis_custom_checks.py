"""Custom metric checks (analysis.metrics): templates checked when read, readings that only make the judge stricter."""

from __future__ import annotations

import pydantic
import pytest
from istio_canary.analysis import custom
from istio_canary.models import AnalysisSpec
from istio_canary.models.analysis import CheckResult, Verdict
from istio_canary.models.metric_checks import MetricCheck, render, template_problem

QUERY = 'sum(rate(checkout_failures_total{namespace="{{ namespace }}",version="{{ version }}"}[{{ interval }}]))'


def check(**fields: object) -> MetricCheck:
    return MetricCheck.model_validate({"name": "checkout", "query": QUERY, "thresholdRange": {"max": 0.5}, **fields})


def look(*outside: str) -> CheckResult:
    return CheckResult(time="t", step=0, weight=20, verdict=Verdict.INCONCLUSIVE, metrics_outside=list(outside))


def test_a_template_with_an_unknown_placeholder_or_that_is_not_promql_is_refused_when_read() -> None:
    assert template_problem(QUERY) is None
    unknown = template_problem('up{pod="{{ pod }}"}')
    assert unknown is not None and unknown.startswith("unknown placeholder {{ pod }}: the placeholders are")
    broken = template_problem("sum(rate(x[{{ interval }}])")
    assert broken is not None and broken.startswith("not PromQL: ")
    with pytest.raises(pydantic.ValidationError, match="not PromQL"):
        check(query="sum(rate(x[{{ interval }}])")


def test_placeholders_are_filled_and_label_values_escaped() -> None:
    values = {"namespace": 'a"b', "service": "reviews", "version": "v2", "interval": "30s"}
    assert render(QUERY, values) == (
        'sum(rate(checkout_failures_total{namespace="a\\"b",version="v2"}[30s]))'
    )


def test_two_checks_of_one_name_are_refused() -> None:
    one = {"name": "a", "query": "vector(1)", "thresholdRange": {"max": 1}}
    with pytest.raises(pydantic.ValidationError, match="a name of its own"):
        AnalysisSpec.model_validate({"metrics": [one, one]})


def test_a_value_outside_its_range_rolls_back_at_the_failure_limit_and_holds_before_it() -> None:
    outside = custom.Reading(check(failureLimit=2), 0.9)
    first = custom.combine(verdict=Verdict.PASS, reason="judge: fine", readings=[outside], history=[look()])
    assert (first.verdict, first.outside) == (Verdict.INCONCLUSIVE, ("checkout",))
    assert first.reason == "metric checkout canary = 0.9, outside [-inf, 0.5] (1 of 2 looks in a row)"
    second = custom.combine(verdict=Verdict.PASS, reason="", readings=[outside], history=[look("checkout")])
    assert second.verdict is Verdict.FAIL
    assert second.reason == "metric checkout canary = 0.9, outside [-inf, 0.5] (2 of 2 looks in a row)"
    # A look within the range in between starts the count again.
    again = custom.combine(
        verdict=Verdict.PASS, reason="", readings=[outside], history=[look("checkout"), look()]
    )
    assert again.verdict is Verdict.INCONCLUSIVE


def test_no_data_never_passes_and_the_judges_own_failure_stands() -> None:
    silent = custom.Reading(check(), None, "canary: the query answered no series")
    held = custom.combine(verdict=Verdict.PASS, reason="", readings=[silent], history=[])
    why = "metric checkout: no data (canary: the query answered no series)"
    assert held == custom.Outcome(Verdict.INCONCLUSIVE, why)
    failed = custom.combine(verdict=Verdict.FAIL, reason="errors: canary worse", readings=[silent], history=[])
    assert (failed.verdict, failed.reason) == (Verdict.FAIL, "errors: canary worse")
    within = custom.Reading(check(), 0.1)
    passed = custom.combine(verdict=Verdict.PASS, reason="judge: fine", readings=[within], history=[])
    assert passed == custom.Outcome(Verdict.PASS, "judge: fine")


def test_difference_from_stable_asks_both_versions_and_subtracts() -> None:
    asked: list[str] = []
    answers = {"v1": (0.25, ""), "v2": (1.0, "")}

    def ask(query: str) -> custom.Answer:
        asked.append(query)
        return answers["v2" if 'version="v2"' in query else "v1"]

    def values(version: str) -> dict[str, str]:
        return custom.template_values(namespace="ns", service="reviews", version=version, window_seconds=30)

    relative = check(comparison="DifferenceFromStable", thresholdRange={"max": 0.5})
    reading = custom.read(relative, ask=ask, values=values, stable="v1", canary="v2")
    assert (reading.value, reading.outside) == (0.75, True)
    assert len(asked) == 2 and all("[30s]" in q for q in asked)
    answers["v1"] = (float("nan"), "")
    assert custom.read(relative, ask=ask, values=values, stable="v1", canary="v2") == custom.Reading(
        relative, None, "stable: the query answered NaN or an infinity"
    )
