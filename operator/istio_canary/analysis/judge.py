"""The judge: is the canary worse than stable, no worse, or is it too early to say? (pure)

The state machine calls :func:`compare` at every look with the counts of both versions since
the current step started (``increase(...[<time since step start>])``), and acts on the
verdict: PASS goes to the next step (or promotes after the last), FAIL rolls back at once,
INCONCLUSIVE and NO_DATA hold the weight. UNREACHABLE is not the judge's to say: the
adapter raises ``MetricsUnavailableError`` and the state machine records it.

Two checks, each a pair of always-valid tests (:mod:`istio_canary.analysis.sequential`):

* Errors. Failing compares the versions *with each other*: given that ``n`` requests failed
  in the step, across both versions, the number of them served by the canary is
  Binomial(n, pi) with ``pi = odds_ratio * s / (1 - s + odds_ratio * s)``, ``s`` the canary's
  share of requests and ``odds_ratio`` the ratio of the canary's error rate to stable's
  (errors as Poisson events proportional to traffic). "The canary is no worse" is
  ``pi <= s``. A service-wide error burst multiplies both versions' errors alike and
  leaves this distribution as it is, which is why a burst does not roll a good canary
  back, while a canary that fails alone shows up after a handful of its failures. The
  test alone would also fail a canary at 0.02% errors against stable's 0.01%, so a FAIL
  also needs the observed excess error rate to pass ``maxErrorRateIncrease``: requiring
  both can only make false rollbacks rarer. Passing needs evidence that the canary's error
  rate is below stable's observed rate plus ``maxErrorRateIncrease``.
* Latency, from the histogram buckets. The same conditional test counts the requests slower
  than the bucket bound that holds stable's quantile (``latencyQuantile``, p99 by default);
  a FAIL also needs the canary's interpolated quantile to exceed stable's by
  ``maxLatencyIncreaseMs``. Passing needs evidence that at most ``1 - latencyQuantile`` of
  the canary's requests are slower than stable's quantile plus ``maxLatencyIncreaseMs``,
  which is the same as "the canary's quantile is within the tolerance".

Levels: a release is rolled back wrongly only if one of ``2 * len(steps)`` failing tests
errs, so each runs at ``maxFalseRollbackRate / (2 * len(steps))`` (a union bound). Passing
tests run at ``maxFalsePromotionRate``: a bad canary must slip through every step to be
promoted, so one passing test's level bounds the whole release.
"""

from __future__ import annotations

import dataclasses
import math

from istio_canary.analysis import counts as counts_
from istio_canary.analysis import sequential
from istio_canary.models.analysis import AnalysisSpec, CheckResult, Verdict

__all__ = ["Judgement", "compare"]


@dataclasses.dataclass(frozen=True)
class Judgement:
    """The judge's answer and the numbers behind it."""

    verdict: Verdict
    reason: str
    stable: counts_.Counts
    canary: counts_.Counts
    stable_latency_ms: float | None = None
    """Stable's ``latencyQuantile`` in ms, interpolated as ``histogram_quantile`` does."""
    canary_latency_ms: float | None = None
    error_evidence: float = 0.0
    """Natural log of the evidence that the canary's error rate is worse than stable's."""
    latency_evidence: float = 0.0
    """Natural log of the evidence that the canary's latency tail is worse than stable's."""

    def check_result(self, *, time: str, step: int, weight: int) -> CheckResult:
        """The entry for ``status.analysis.history``."""
        return CheckResult(
            time=time,
            step=step,
            weight=weight,
            verdict=self.verdict,
            reason=self.reason,
            stable_requests=self.stable.requests,
            stable_errors=self.stable.errors,
            canary_requests=self.canary.requests,
            canary_errors=self.canary.errors,
            stable_latency_ms=self.stable_latency_ms,
            canary_latency_ms=self.canary_latency_ms,
        )


@dataclasses.dataclass(frozen=True)
class _Check:
    """One check's outcome: failed, passed, or neither, and why."""

    failed: bool
    passed: bool
    why: str
    evidence: float = 0.0


def compare(*, stable: counts_.Counts, canary: counts_.Counts, spec: AnalysisSpec) -> Judgement:
    """Compare the canary with stable over the same time since the step started.

    ``stable`` and ``canary`` are cumulative since the step started; the judge keeps no
    state between looks, so looking more often changes nothing but how early it decides.

    >>> from istio_canary.analysis.counts import Counts
    >>> spec = AnalysisSpec()
    >>> compare(stable=Counts(requests=900, errors=1), canary=Counts(requests=100, errors=20),
    ...       spec=spec).verdict
    <Verdict.FAIL: 'Fail'>
    >>> compare(stable=Counts(requests=900), canary=Counts(), spec=spec).verdict
    <Verdict.NO_DATA: 'NoData'>
    """
    stable_requests, _ = stable.whole()
    canary_requests, _ = canary.whole()
    if stable_requests == 0 or canary_requests == 0:
        idle = "canary" if canary_requests == 0 else "stable"
        return Judgement(Verdict.NO_DATA, f"no requests to {idle} in this step", stable, canary)

    steps = max(1, len(spec.weights()))
    fail_level = math.log(2 * steps / spec.max_false_rollback_rate)
    pass_level = math.log(1 / spec.max_false_promotion_rate)
    errors = _check_errors(stable=stable, canary=canary, spec=spec, fail_level=fail_level,
                           pass_level=pass_level)
    latency, stable_ms, canary_ms = _check_latency(stable=stable, canary=canary, spec=spec,
                                                   fail_level=fail_level, pass_level=pass_level)

    def answer(verdict: Verdict, reason: str) -> Judgement:
        return Judgement(verdict, reason, stable, canary, stable_ms, canary_ms,
                         errors.evidence, latency.evidence)

    failed = [c.why for c in (errors, latency) if c.failed]
    if failed:
        return answer(Verdict.FAIL, "; ".join(failed))
    fewest = min(stable_requests, canary_requests)
    if fewest < spec.min_requests:
        return answer(Verdict.INCONCLUSIVE, f"{fewest} of {spec.min_requests} requests needed")
    if errors.passed and latency.passed:
        return answer(Verdict.PASS, f"{errors.why}; {latency.why}")
    pending = [c.why for c in (errors, latency) if not c.passed]
    return answer(Verdict.INCONCLUSIVE, "; ".join(pending))


def _check_errors(*, stable: counts_.Counts, canary: counts_.Counts, spec: AnalysisSpec,
                  fail_level: float, pass_level: float) -> _Check:
    stable_requests, stable_errors = stable.whole()
    canary_requests, canary_errors = canary.whole()
    stable_rate = stable_errors / stable_requests
    canary_rate = canary_errors / canary_requests
    share = canary_requests / (canary_requests + stable_requests)
    worse = sequential.log_evidence_above(
        events=canary_errors, trials=canary_errors + stable_errors, p0=share
    )
    rates = f"errors {canary_rate:.2%} canary vs {stable_rate:.2%} stable"
    if worse >= fail_level and canary_rate - stable_rate > spec.max_error_rate_increase:
        return _Check(failed=True, passed=False, why=f"{rates}: canary worse", evidence=worse)
    bound = stable_rate + spec.max_error_rate_increase
    within = sequential.log_evidence_below(events=canary_errors, trials=canary_requests, p0=bound)
    if within >= pass_level:
        return _Check(failed=False, passed=True, why=f"{rates}: within tolerance", evidence=worse)
    return _Check(failed=False, passed=False, why=f"{rates}: not yet conclusive", evidence=worse)


def _check_latency(*, stable: counts_.Counts, canary: counts_.Counts, spec: AnalysisSpec,
                   fail_level: float, pass_level: float) -> tuple[_Check, float | None, float | None]:
    q = spec.latency_quantile
    stable_ms = counts_.quantile(stable.buckets, q)
    canary_ms = counts_.quantile(canary.buckets, q)
    bound_ms = counts_.quantile_bucket_bound(stable.buckets, q)
    if stable_ms is None or canary_ms is None or bound_ms is None:
        return _Check(failed=False, passed=False, why="no latency histogram yet"), stable_ms, canary_ms

    stable_total = round(counts_.histogram_total(stable.buckets))
    canary_total = round(counts_.histogram_total(canary.buckets))
    label = f"p{_percent(q)} {canary_ms:.0f} ms canary vs {stable_ms:.0f} ms stable"
    worse = 0.0
    if not math.isinf(bound_ms):
        # Requests slower than the bucket holding stable's quantile: whole bucket bounds, so
        # the counts are observed, not interpolated.
        stable_slow = min(stable_total, round(counts_.count_above(stable.buckets, bound_ms)))
        canary_slow = min(canary_total, round(counts_.count_above(canary.buckets, bound_ms)))
        worse = sequential.log_evidence_above(
            events=canary_slow,
            trials=canary_slow + stable_slow,
            p0=canary_total / (canary_total + stable_total),
        )
    if worse >= fail_level and canary_ms - stable_ms > spec.max_latency_increase_ms:
        return _Check(failed=True, passed=False, why=f"{label}: canary slower", evidence=worse), \
            stable_ms, canary_ms

    allowed_ms = stable_ms + spec.max_latency_increase_ms
    canary_slower = min(canary_total, round(counts_.count_above(canary.buckets, allowed_ms)))
    within = sequential.log_evidence_below(events=canary_slower, trials=canary_total, p0=1 - q)
    passed = within >= pass_level
    why = f"{label}: {'within tolerance' if passed else 'not yet conclusive'}"
    return _Check(failed=False, passed=passed, why=why, evidence=worse), stable_ms, canary_ms


def _percent(q: float) -> str:
    """``0.99`` -> ``"99"``, ``0.999`` -> ``"99.9"``: the way people name quantiles."""
    return f"{q * 100:.10g}"
