"""The judge: is the canary worse than stable, no worse, or is it too early to say? (pure)

The state machine calls :func:`compare` at every look with the counts of both versions since
the current step started (``increase(...[<time since step start>])``), and acts on the
verdict: PASS goes to the next step (or promotes after the last), FAIL rolls back at once,
INCONCLUSIVE and NO_DATA hold the weight. UNREACHABLE is not the judge's to say: the
adapter raises ``MetricsUnavailableError`` and the state machine records it.

Two checks, errors and latency, each a pair of always-valid tests whose evidence adds up over
the whole release (:mod:`istio_canary.analysis.evidence`): the caller passes the evidence of
the steps already passed (``carried``), and the judge adds this step's.

* Errors. Failing compares the versions *with each other*: given that ``n`` requests failed
  in the step, across both versions, the number of them served by the canary is
  Binomial(n, pi) with ``pi = odds_ratio * s / (1 - s + odds_ratio * s)``, ``s`` the canary's
  share of requests and ``odds_ratio`` the ratio of the canary's error rate to stable's
  (errors as Poisson events proportional to traffic). "The canary is no worse" is
  ``pi <= s``. A service-wide error burst multiplies both versions' errors alike and
  leaves this distribution as it is, which is why a burst does not roll a good canary
  back, while a canary that fails alone shows up after a handful of its failures. The
  test alone would also fail a canary at 0.02% errors against stable's 0.01%, so a FAIL
  also needs the observed excess error rate (over the release) to pass
  ``maxErrorRateIncrease``: requiring both can only make false rollbacks rarer. Passing
  needs evidence that the canary's error rate is below stable's observed rate plus
  ``maxErrorRateIncrease``.
* Latency, from the whole histogram (:mod:`istio_canary.analysis.latency`): a test of
  stochastic order over the buckets holding both versions' median, p90, p99 and p99.9; a FAIL also needs the
  canary's interpolated quantile to exceed stable's by ``maxLatencyIncreaseMs``. Passing needs
  evidence against "the canary is ``maxLatencyIncreaseMs`` slower".

Levels: a release is rolled back wrongly only if one of its two failing tests errs, each a
test martingale over the whole release, so each runs at ``maxFalseRollbackRate / 2``.
Promotion needs the passing tests' evidence to reach ``1 / maxFalsePromotionRate`` over the
release; earlier steps need a part of it, in proportion to the weight reached (the ramp
grows as the evidence does: see :class:`_Levels`), and a probe step (``probeWeight``) needs
none: only ``minRequests`` and no failure.

Counts that cannot be counts (NaN, infinite, negative) are ``BAD_DATA``: never a pass, never
a crash.
"""

from __future__ import annotations

import dataclasses
import math

from istio_canary.analysis import counts as counts_
from istio_canary.analysis import evidence as evidence_
from istio_canary.analysis import latency, sequential
from istio_canary.models.analysis import AnalysisSpec, CheckResult, Evidence, Verdict

__all__ = ["Judgement", "compare", "pass_share"]


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
    """Natural log of the evidence, over the release, that the canary's error rate is worse than stable's."""
    latency_evidence: float = 0.0
    """Natural log of the evidence, over the release, that the canary is slower than stable."""
    evidence: Evidence | None = None
    """This step's evidence alone: what a pass carries into the next step."""

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
            evidence=self.evidence,
        )


@dataclasses.dataclass(frozen=True)
class _Check:
    """One check's outcome: failed, passed, or neither, and why."""

    failed: bool
    passed: bool
    why: str
    evidence: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Levels:
    """Where this look's tests decide: ``fail`` for rolling back, ``passing`` (None: a probe,
    which needs no evidence) for passing the step, ``final`` at the last step."""

    fail: float
    passing: float | None
    final: bool

    def passed(self, total: Evidence, test: str) -> bool:
        """Has the passing test reached its level? The mixture at the last step (it promotes, so
        it must be a valid test), the strongest alternative on the ramp before it: a canary near
        the tolerance (both versions at 2% errors) starts the mixture well below zero, which
        would hold it at a low step for long although its best alternative's evidence already
        says it is no worse; a worse canary's best alternative falls as its mixture does."""
        if self.passing is None:
            return True
        progress = evidence_.mixed(total, test) if self.final else evidence_.best(total, test)
        return progress >= self.passing


def compare(
    *,
    stable: counts_.Counts,
    canary: counts_.Counts,
    spec: AnalysisSpec,
    carried: Evidence | None = None,
    step: int | None = None,
) -> Judgement:
    """Compare the canary with stable over the same time since the step started.

    ``stable`` and ``canary`` are cumulative since the step started; ``carried`` is the
    evidence of the steps passed before (``status.analysis.evidence``) and ``step`` the
    current step's index (None: judge as the last step, which needs all the evidence).

    >>> from istio_canary.analysis.counts import Counts
    >>> spec = AnalysisSpec()
    >>> compare(stable=Counts(requests=900, errors=1), canary=Counts(requests=100, errors=20),
    ...       spec=spec).verdict
    <Verdict.FAIL: 'Fail'>
    >>> compare(stable=Counts(requests=900), canary=Counts(), spec=spec).verdict
    <Verdict.NO_DATA: 'NoData'>
    >>> compare(stable=Counts(requests=float("nan")), canary=Counts(requests=9), spec=spec).verdict
    <Verdict.BAD_DATA: 'BadData'>
    """
    bad = _bad_values(stable=stable, canary=canary)
    if bad:
        return Judgement(Verdict.BAD_DATA, bad, stable, canary)
    stable_requests, _ = stable.whole()
    canary_requests, _ = canary.whole()
    if stable_requests == 0 or canary_requests == 0:
        idle = "canary" if canary_requests == 0 else "stable"
        return Judgement(Verdict.NO_DATA, f"no requests to {idle} in this step", stable, canary)

    here = _step_evidence(stable=stable, canary=canary, spec=spec, carried=carried)
    total = evidence_.combine(carried, here)
    fail_level = math.log(2 / spec.max_false_rollback_rate)
    share = pass_share(spec, step)
    pass_level = None if share is None else share * math.log(1 / spec.max_false_promotion_rate)
    levels = _Levels(fail=fail_level, passing=pass_level, final=share == 1.0)
    errors = _check_errors(total=total, spec=spec, levels=levels)
    latency_, stable_ms, canary_ms = _check_latency(stable=stable, canary=canary, total=total, spec=spec, levels=levels)
    verdict, reason = _verdict(errors, latency_, fewest=min(stable_requests, canary_requests), spec=spec)
    return Judgement(verdict, reason, stable, canary, stable_ms, canary_ms, errors.evidence, latency_.evidence, here)


def _verdict(errors: _Check, latency_: _Check, *, fewest: int, spec: AnalysisSpec) -> tuple[Verdict, str]:
    failed = [c.why for c in (errors, latency_) if c.failed]
    if failed:
        return Verdict.FAIL, "; ".join(failed)
    if fewest < spec.min_requests:
        return Verdict.INCONCLUSIVE, f"{fewest} of {spec.min_requests} requests needed"
    if errors.passed and latency_.passed:
        return Verdict.PASS, f"{errors.why}; {latency_.why}"
    return Verdict.INCONCLUSIVE, "; ".join(c.why for c in (errors, latency_) if not c.passed)


def pass_share(spec: AnalysisSpec, step: int | None) -> float | None:
    """The part of the promotion evidence that passing ``step`` needs; None for a probe (none).

    The ramp: leaving a step needs the weights reached so far over the sum of all steps'
    weights, so each step takes about as long as the next at a steady evidence rate, and the
    last step needs all of it. None (a probe) needs only ``minRequests`` and no failure.
    """
    weights = spec.weights()
    if step is None or step >= len(weights) - 1:
        return 1.0
    ladder = weights
    if spec.has_probe():
        if step == 0:
            return None
        ladder, step = weights[1:], step - 1
    return sum(ladder[: step + 1]) / sum(ladder)


def _bad_values(*, stable: counts_.Counts, canary: counts_.Counts) -> str:
    """Why these counts cannot be counts (NaN, infinite or negative), or "" when they can."""
    for name, counts in (("stable", stable), ("canary", canary)):
        values = [counts.requests, counts.errors, *(count for _le, count in counts.buckets)]
        bounds = [le for le, _count in counts.buckets]
        if any(not math.isfinite(v) or v < 0 for v in values) or any(math.isnan(le) for le in bounds):
            return f"Prometheus returned counts for {name} that are not finite non-negative numbers"
    return ""


def _step_evidence(
    *, stable: counts_.Counts, canary: counts_.Counts, spec: AnalysisSpec, carried: Evidence | None
) -> Evidence:
    """This step's log likelihood ratios for the four tests, and its whole counts."""
    stable_requests, stable_errors = stable.whole()
    canary_requests, canary_errors = canary.whole()
    share = canary_requests / (canary_requests + stable_requests)
    before = carried or Evidence()
    stable_rate = (before.stable_errors + stable_errors) / (before.stable_requests + stable_requests)
    bound = min(1.0 - 1e-9, stable_rate + spec.max_error_rate_increase)
    return Evidence(
        errors_worse=list(sequential.log_likelihood_ratios(
            events=canary_errors, trials=canary_errors + stable_errors, p0=share, grid=sequential.WORSE_ODDS_RATIOS
        )),
        latency_worse=list(latency.slower_ratios(stable.buckets, canary.buckets)),
        errors_within=list(sequential.log_likelihood_ratios(
            events=canary_errors, trials=canary_requests, p0=bound, grid=sequential.BETTER_ODDS_RATIOS
        )),
        latency_within=list(latency.within_ratios(
            stable.buckets, canary.buckets, quantile=spec.latency_quantile, tolerance_ms=spec.max_latency_increase_ms
        )),
        stable_requests=stable_requests,
        stable_errors=stable_errors,
        canary_requests=canary_requests,
        canary_errors=canary_errors,
    )


def _check_errors(*, total: Evidence, spec: AnalysisSpec, levels: _Levels) -> _Check:
    stable_rate = total.stable_errors / total.stable_requests
    canary_rate = total.canary_errors / total.canary_requests
    worse = evidence_.mixed(total, "errors_worse")
    rates = f"errors {canary_rate:.2%} canary vs {stable_rate:.2%} stable"
    if worse >= levels.fail and canary_rate - stable_rate > spec.max_error_rate_increase:
        return _Check(failed=True, passed=False, why=f"{rates}: canary worse", evidence=worse)
    if levels.passed(total, "errors_within"):
        return _Check(failed=False, passed=True, why=f"{rates}: within tolerance", evidence=worse)
    return _Check(failed=False, passed=False, why=f"{rates}: not yet conclusive", evidence=worse)


def _check_latency(
    *, stable: counts_.Counts, canary: counts_.Counts, total: Evidence, spec: AnalysisSpec, levels: _Levels
) -> tuple[_Check, float | None, float | None]:
    q = spec.latency_quantile
    stable_ms = counts_.quantile(stable.buckets, q)
    canary_ms = counts_.quantile(canary.buckets, q)
    # Fractional increase() results: a histogram total below half a request is no histogram.
    whole = min(round(counts_.histogram_total(stable.buckets)), round(counts_.histogram_total(canary.buckets)))
    if stable_ms is None or canary_ms is None or whole <= 0:
        return _Check(failed=False, passed=False, why="no latency histogram yet"), stable_ms, canary_ms

    label = f"p{_percent(q)} {canary_ms:.0f} ms canary vs {stable_ms:.0f} ms stable"
    worse = evidence_.mixed(total, "latency_worse")
    if worse >= levels.fail and canary_ms - stable_ms > spec.max_latency_increase_ms:
        return _Check(failed=True, passed=False, why=f"{label}: canary slower", evidence=worse), \
            stable_ms, canary_ms
    passed = levels.passed(total, "latency_within")
    why = f"{label}: {'within tolerance' if passed else 'not yet conclusive'}"
    return _Check(failed=False, passed=passed, why=why, evidence=worse), stable_ms, canary_ms


def _percent(q: float) -> str:
    """``0.99`` -> ``"99"``, ``0.999`` -> ``"99.9"``: the way people name quantiles."""
    return f"{q * 100:.10g}"
