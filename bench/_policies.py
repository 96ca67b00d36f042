"""The decision policies the benchmark compares, all fed the same looks.

Each policy owns its canary weight (``weight``, percent) and sees, at every look (one scrape
interval), the counts both versions served since the previous look; it answers "fail" (roll
back now), "promote" (the canary takes all traffic) or None (carry on at ``weight``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from _traffic import Window
from istio_canary.analysis import counts as counts_
from istio_canary.analysis import judge as judge_
from istio_canary.analysis import progression
from istio_canary.models.analysis import AnalysisSpec, AnalysisStatus

__all__ = ["ArgoAnalysis", "Decision", "FlaggerThreshold", "OurJudge", "Policy", "WaldSprt"]

Decision = Literal["fail", "promote"] | None
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Policy(Protocol):
    name: str

    @property
    def weight(self) -> int: ...

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision: ...


class OurJudge:
    """The operator's own path: ``judge.compare`` on the counts since the step started, with the
    evidence of earlier steps, and ``progression.advance`` on its verdict (steps, holds,
    NoData deadline, promotion), exactly as a reconcile does."""

    def __init__(self, spec: AnalysisSpec, *, name: str = "judge") -> None:
        self.name = name
        self._spec = spec
        self._status = AnalysisStatus(step=0, weight=spec.weights()[0], step_started_at=EPOCH.isoformat())
        self._stable, self._canary = Window(), Window()

    @property
    def weight(self) -> int:
        return self._status.weight

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision:
        self._stable.add(stable)
        self._canary.add(canary)
        now = EPOCH + timedelta(seconds=t)
        status = self._status
        judgement = judge_.compare(stable=self._stable.counts(), canary=self._canary.counts(), spec=self._spec,
                                   carried=status.evidence, step=status.step)
        check = judgement.check_result(time=now.isoformat(), step=status.step, weight=status.weight)
        moved = progression.advance(spec=self._spec, status=status, check=check, now=now)
        self._status = moved.status
        if moved.outcome is progression.Outcome.ROLLBACK:
            return "fail"
        if moved.outcome is progression.Outcome.PROMOTE:
            return "promote"
        if moved.status.step != status.step:
            self._stable, self._canary = Window(), Window()
        return None


@dataclasses.dataclass
class WaldSprt:
    """Wald's SPRT on the canary's own counts, told the true rates: the statistical reference.

    Two tests over the whole release, errors (``p0`` stable's error rate against ``p1``) and slow
    requests (above ``slow_bound_ms``, ``q0`` against ``q1``), at the judge's levels and on the
    judge's ramp: the same weights, each step passed on the same part of the evidence
    (``judge.pass_share``), the probe on ``minRequests``. It knows what no operator can know,
    which is what makes it the limit; it also takes any error as the canary's, so a
    service-wide burst can fool it.
    """

    p0: float
    p1: float
    q0: float
    q1: float
    slow_bound_ms: float
    spec: AnalysisSpec
    name: str = "wald-sprt"
    _step: int = 0
    _window: Window = dataclasses.field(default_factory=Window)
    _step_requests: int = 0

    @property
    def weight(self) -> int:
        return self.spec.weights()[self._step]

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision:
        self._window.add(canary)
        self._step_requests += canary.requests
        slow = round(counts_.count_above(self._window.counts().buckets, self.slow_bound_ms))
        llrs = (
            _llr(self._window.errors, self._window.requests, self.p0, self.p1),
            _llr(slow, self._window.requests, self.q0, self.q1),
        )
        alpha, beta = self.spec.max_false_rollback_rate / 2, self.spec.max_false_promotion_rate
        if max(llrs) >= math.log((1 - beta) / alpha):
            return "fail"
        share = judge_.pass_share(self.spec, self._step)
        if self._step_requests < self.spec.min_requests:
            return None
        if share is None or max(llrs) <= share * math.log(beta / (1 - alpha)):
            self._step += 1
            self._step_requests = 0
            return "promote" if self._step == len(self.spec.weights()) else None
        return None


def _llr(events: int, trials: int, p0: float, p1: float) -> float:
    return events * math.log(p1 / p0) + (trials - events) * math.log((1 - p1) / (1 - p0))


def _minute_fails(window: Window, *, min_success_rate: float, max_p99_ms: float | None) -> bool:
    """A failed check: success rate (or p99) past its threshold; no canary request is a failure too."""
    if window.requests == 0:
        return True
    if 1 - window.errors / window.requests < min_success_rate:
        return True
    return max_p99_ms is not None and (counts_.quantile(window.counts().buckets, 0.99) or 0.0) > max_p99_ms


class FlaggerThreshold:
    """Flagger's analysis loop (fluxcd/flagger ``advanceCanary``), as its docs and code describe it.

    Every ``interval_s`` (a tick): first, if ``failed_checks >= threshold``, roll back; on the
    first tick the weight goes to ``step_weight`` with no check; otherwise the canary's
    request-success-rate and p99 over the last ``metric_window_s`` are checked (Flagger's
    built-in queries), a check with no data failing like a bad one. A failed check adds one to
    the counter (never reset during the analysis) and holds the weight; a passing one adds
    ``step_weight`` up to ``max_weight``, and a passing check at ``max_weight`` promotes.
    """

    def __init__(self, *, name: str, interval_s: int, look_s: int, threshold: int, metric_window_s: int = 60,
                 step_weight: int = 10, max_weight: int = 50, min_success_rate: float = 0.99,
                 max_p99_ms: float = 500.0) -> None:
        self.name = name
        self._interval_s, self._threshold = interval_s, threshold
        self._looks: deque[Window] = deque(maxlen=max(1, metric_window_s // look_s))
        self._step_weight, self._max_weight = step_weight, max_weight
        self._min_success_rate, self._max_p99_ms = min_success_rate, max_p99_ms
        self._failed = 0
        self._weight = 0

    @property
    def weight(self) -> int:
        return self._weight

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision:
        self._looks.append(canary)
        if t % self._interval_s:
            return None
        if self._failed >= self._threshold:
            return "fail"
        if self._weight == 0:
            self._weight = self._step_weight
            self._looks.clear()
            return None
        window = Window()
        for look in self._looks:
            window.add(look)
        if _minute_fails(window, min_success_rate=self._min_success_rate, max_p99_ms=self._max_p99_ms):
            self._failed += 1
            return None
        if self._weight >= self._max_weight:
            return "promote"
        self._weight = min(self._max_weight, self._weight + self._step_weight)
        return None


class ArgoAnalysis:
    """An Argo Rollouts canary with a background AnalysisTemplate, as its docs describe it.

    Steps ``setWeight: w`` then ``pause: {duration: step_s}`` for each weight, then promotion.
    The analysis measures the canary's success rate over the last minute every ``interval_s``;
    a measurement below ``min_success_rate`` fails, and the rollout aborts as soon as more than
    ``failure_limit`` have failed. A measurement with no data is an error, and more than
    ``consecutive_error_limit`` errors in a row abort too (Argo's default limit is 4).
    """

    def __init__(self, *, name: str, failure_limit: int, look_s: int, weights: Sequence[int] = (10, 20, 30, 40, 50),
                 step_s: int = 60, interval_s: int = 60, min_success_rate: float = 0.99,
                 consecutive_error_limit: int = 4) -> None:
        self.name = name
        self._failure_limit, self._error_limit = failure_limit, consecutive_error_limit
        self._weights, self._step_s, self._interval_s = tuple(weights), step_s, interval_s
        self._looks: deque[Window] = deque(maxlen=max(1, interval_s // look_s))
        self._min_success_rate = min_success_rate
        self._failed = self._errors = 0
        self._t = 0

    @property
    def weight(self) -> int:
        return self._weights[min(len(self._weights) - 1, self._t // self._step_s)]

    def observe(self, *, t: int, stable: Window, canary: Window) -> Decision:
        self._looks.append(canary)
        self._t = t
        if t % self._interval_s == 0:
            window = Window()
            for look in self._looks:
                window.add(look)
            if window.requests == 0:
                self._errors += 1
            else:
                self._errors = 0
                self._failed += _minute_fails(window, min_success_rate=self._min_success_rate, max_p99_ms=None)
            if self._failed > self._failure_limit or self._errors > self._error_limit:
                return "fail"
        if t >= self._step_s * len(self._weights):
            return "promote"
        return None
