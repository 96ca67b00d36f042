"""Custom metric checks: ``spec.analysis.metrics``, PromQL templates beside Istio's metrics. (pure)

A check is a PromQL query with placeholders that the operator fills in at each look, once per
version it measures; the answer must be one number. It is judged against ``thresholdRange``:
the canary's value itself (``Absolute``), or the canary's value minus stable's
(``DifferenceFromStable``, both measured over the same window). Templates are checked when the
release is read, before anything moves: an unknown placeholder or a query that is not PromQL
is an invalid spec.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated

import promql_parser
from pydantic import ConfigDict, Field, field_validator

from istio_canary.models._base import ApiModel

__all__ = ["PLACEHOLDERS", "Comparison", "MetricCheck", "MetricRange", "render", "template_problem"]

MAX_QUERY = 512
PLACEHOLDERS = ("namespace", "service", "version", "interval")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# What each placeholder stands for while a template is parsed: a label value or a duration.
_EXAMPLE = {"namespace": "bookinfo", "service": "reviews", "version": "v2", "interval": "30s"}


class Comparison(str, enum.Enum):
    """What ``thresholdRange`` bounds."""

    ABSOLUTE = "Absolute"
    """The canary's value."""
    DIFFERENCE_FROM_STABLE = "DifferenceFromStable"
    """The canary's value minus stable's, over the same window."""


class MetricRange(ApiModel):
    """Bounds a value must stay within; either may be left out."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "thresholdRange needs min, max or both"},
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "message": "thresholdRange.min must not be above thresholdRange.max",
                },
            ]
        }
    )

    min: float | None = Field(default=None, description="Lowest value that passes.")
    max: float | None = Field(default=None, description="Highest value that passes.")

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "+inf" if self.max is None else f"{self.max:g}"
        return f"[{low}, {high}]"


class MetricCheck(ApiModel):
    """A PromQL check beside Istio's metrics: a business metric, a saturation signal, anything Prometheus has. The query's placeholders {{ namespace }}, {{ service }}, {{ version }} and {{ interval }} (the look's window, e.g. 30s) are filled in at each look, and the answer must be one number: no series or NaN is no data, which never passes a step."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] = Field(
        description="Name of the check, as status and Events show it."
    )
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY)] = Field(
        description="PromQL template that returns one number for one version."
    )
    threshold_range: MetricRange = Field(description="The values that pass.")
    comparison: Comparison = Field(
        default=Comparison.ABSOLUTE,
        description="Absolute: thresholdRange bounds the canary's value. DifferenceFromStable: it bounds the "
        "canary's value minus stable's.",
    )
    failure_limit: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2, description="Roll back after this many looks in a row with the value outside thresholdRange."
    )

    @field_validator("query")
    @classmethod
    def _a_template_of_promql(cls, query: str) -> str:
        problem = template_problem(query)
        if problem:
            raise ValueError(problem)
        return query


def template_problem(template: str) -> str | None:
    """What is wrong with a query template (an unknown placeholder, not PromQL), or None."""
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in PLACEHOLDERS})
    if unknown:
        known = ", ".join("{{ " + name + " }}" for name in PLACEHOLDERS)
        return f"unknown placeholder {{{{ {unknown[0]} }}}}: the placeholders are {known}"
    try:
        promql_parser.parse(render(template, _EXAMPLE))
    except ValueError as err:
        return f"not PromQL: {str(err)[:200]}"
    return None


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with every placeholder filled in; label values are escaped for a quoted string.

    >>> render('up{namespace="{{ namespace }}"}[{{interval}}]', {"namespace": "a", "interval": "5s"})
    'up{namespace="a"}[5s]'
    """

    def filled(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return _PLACEHOLDER.sub(filled, template)
