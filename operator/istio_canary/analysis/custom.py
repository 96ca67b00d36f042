"""Custom metric checks (``analysis.metrics``) judged at a look, beside Istio's metrics. (pure)

Each check's template is filled in per version and asked of Prometheus by the runner; here the
answers become a verdict that can only make the judge's stricter:

* a value outside ``thresholdRange`` at ``failureLimit`` looks in a row is FAIL: roll back;
* outside it fewer times, or no number at all (no series, NaN, several series, a refused
  query), the step cannot pass: PASS becomes INCONCLUSIVE, and the reason names the check;
* otherwise the judge's verdict stands.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from istio_canary.models.analysis import CheckResult, Verdict
from istio_canary.models.metric_checks import Comparison, MetricCheck, render

__all__ = ["Answer", "Outcome", "Reading", "combine", "read", "template_values"]

Answer = tuple[float | None, str]
"""One query's number, or None and why there is none."""

Ask = Callable[[str], Answer]
"""PromQL text -> its answer (the runner's adapter call)."""


@dataclass(frozen=True)
class Reading:
    """What one check measured at this look: the value it judges, or why there is none."""

    check: MetricCheck
    value: float | None
    why_none: str = ""

    @property
    def outside(self) -> bool:
        return self.value is not None and not self.check.threshold_range.holds(self.value)


@dataclass(frozen=True)
class Outcome:
    """The verdict after the checks, its reason, and the checks outside their range at this look."""

    verdict: Verdict
    reason: str
    outside: tuple[str, ...] = ()


def template_values(*, namespace: str, service: str, version: str, window_seconds: int) -> dict[str, str]:
    return {"namespace": namespace, "service": service, "version": version, "interval": f"{window_seconds}s"}


def read(check: MetricCheck, *, ask: Ask, values: Callable[[str], dict[str, str]], stable: str, canary: str) -> Reading:
    """Ask for the canary's value (and stable's, for ``DifferenceFromStable``) and combine them."""
    canary_value, why = _number(ask(render(check.query, values(canary))))
    if canary_value is None:
        return Reading(check, None, f"canary: {why}")
    if check.comparison is Comparison.ABSOLUTE:
        return Reading(check, canary_value)
    stable_value, why = _number(ask(render(check.query, values(stable))))
    if stable_value is None:
        return Reading(check, None, f"stable: {why}")
    return Reading(check, canary_value - stable_value)


def combine(
    *, verdict: Verdict, reason: str, readings: Sequence[Reading], history: Sequence[CheckResult]
) -> Outcome:
    """The judge's verdict and reason after the checks' readings (see the module docstring)."""
    if not readings:
        return Outcome(verdict, reason)
    outside = tuple(r.check.name for r in readings if r.outside)
    failed = [r for r in readings if r.outside and _in_a_row(r.check.name, history) + 1 >= r.check.failure_limit]
    if failed:
        return Outcome(Verdict.FAIL, "; ".join(_described(r, history) for r in failed), outside)
    if verdict is not Verdict.PASS:
        return Outcome(verdict, reason, outside)
    holding = [_described(r, history) for r in readings if r.value is None or r.outside]
    if holding:
        return Outcome(Verdict.INCONCLUSIVE, "; ".join(holding), outside)
    return Outcome(verdict, reason, outside)


def _number(answer: Answer) -> Answer:
    value, why = answer
    if value is None:
        return None, why or "no data"
    if not math.isfinite(value):
        return None, "the query answered NaN or an infinity"
    return value, ""


def _in_a_row(name: str, history: Sequence[CheckResult]) -> int:
    """Looks in a row, up to the last one, at which the check was outside its range."""
    count = 0
    for look in reversed(history):
        if name not in look.metrics_outside:
            break
        count += 1
    return count


def _described(reading: Reading, history: Sequence[CheckResult]) -> str:
    check = reading.check
    what = "canary - stable" if check.comparison is Comparison.DIFFERENCE_FROM_STABLE else "canary"
    if reading.value is None:
        return f"metric {check.name}: no data ({reading.why_none})"
    where = "within" if not reading.outside else "outside"
    text = f"metric {check.name} {what} = {reading.value:.4g}, {where} {check.threshold_range}"
    if reading.outside:
        text += f" ({_in_a_row(check.name, history) + 1} of {check.failure_limit} looks in a row)"
    return text
