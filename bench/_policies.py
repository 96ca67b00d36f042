"""The three decision policies the benchmark compares, all fed the same looks.

Each policy sees, at every look, the counts both versions served during the last scrape
interval, and answers "pass" (next step), "fail" (roll back) or None (hold).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Literal, Protocol

from _traffic import Window
from istio_canary.analysis import counts as counts_
from istio_canary.analysis import judge as judge_
from istio_canary.models.analysis import AnalysisSpec, Verdict

__all__ = ["Decision", "FlaggerThreshold", "OurJudge", "Policy", "WaldSprt"]

Decision = Literal["pass", "fail"] | None


class Policy(Protocol):
    name: str

    def start_step(self) -> None: ...

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision: ...


class OurJudge:
    """``istio_canary.analysis.judge.compare`` on the counts since the step started."""

    name = "judge"

    def __init__(self, spec: AnalysisSpec) -> None:
        self._spec = spec
        self._stable = Window()
        self._canary = Window()

    def start_step(self) -> None:
        self._stable, self._canary = Window(), Window()

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision:
        self._stable.add(stable)
        self._canary.add(canary)
        verdict = judge_.compare(
            stable=self._stable.counts(), canary=self._canary.counts(), spec=self._spec
        ).verdict
        return {Verdict.PASS: "pass", Verdict.FAIL: "fail"}.get(verdict)  # type: ignore[return-value]


@dataclasses.dataclass
class WaldSprt:
    """Wald's SPRT on the canary's own counts, told the true rates: the statistical reference.

    Two tests per step, errors (``p0`` stable's error rate against ``p1``) and slow requests
    (above ``slow_bound_ms``, ``q0`` against ``q1``), at the judge's levels. It knows what
    no operator can know, which is what makes it the limit; it also takes any error as the
    canary's, so a service-wide burst can fool it.
    """

    p0: float
    p1: float
    q0: float
    q1: float
    slow_bound_ms: float
    alpha: float
    beta: float
    name: str = "wald-sprt"
    _window: Window = dataclasses.field(default_factory=Window)

    def start_step(self) -> None:
        self._window = Window()

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision:
        self._window.add(canary)
        cumulative = self._window.counts()
        slow = round(counts_.count_above(cumulative.buckets, self.slow_bound_ms))
        llrs = (
            _llr(self._window.errors, self._window.requests, self.p0, self.p1),
            _llr(slow, self._window.requests, self.q0, self.q1),
        )
        if max(llrs) >= math.log((1 - self.beta) / self.alpha):
            return "fail"
        if max(llrs) <= math.log(self.beta / (1 - self.alpha)):
            return "pass"
        return None


def _llr(events: int, trials: int, p0: float, p1: float) -> float:
    return events * math.log(p1 / p0) + (trials - events) * math.log((1 - p1) / (1 - p0))


class FlaggerThreshold:
    """A Flagger-style policy: every minute, check the last minute against fixed thresholds.

    A check fails when the canary's success rate is below ``min_success_rate`` or its p99
    (``histogram_quantile``) is above ``max_p99_ms``; after ``failed_checks`` failures the
    canary is rolled back, and every passing check advances one step. The failure counter
    never resets, which favours this policy: Flagger's counter is never more eager.
    A minute without canary requests is skipped, not counted.
    """

    name = "flagger"

    def __init__(self, *, interval_s: int, look_s: int, min_success_rate: float,
                 max_p99_ms: float, failed_checks: int) -> None:
        self._interval_s = interval_s
        self._looks: deque[Window] = deque(maxlen=interval_s // look_s)
        self._min_success_rate = min_success_rate
        self._max_p99_ms = max_p99_ms
        self._threshold = failed_checks
        self._failures = 0

    def start_step(self) -> None:
        pass

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision:
        self._looks.append(canary)
        if t % self._interval_s:
            return None
        minute = Window()
        for look in self._looks:
            minute.add(look)
        if minute.requests == 0:
            return None
        success = 1 - minute.errors / minute.requests
        p99 = counts_.quantile(minute.counts().buckets, 0.99) or 0.0
        if success >= self._min_success_rate and p99 <= self._max_p99_ms:
            return "pass"
        self._failures += 1
        return "fail" if self._failures >= self._threshold else None
