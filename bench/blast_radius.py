"""Blast-radius benchmark: how much harm a bad canary does before each policy stops it.

Run from the repository root, with the operator package installed::

    python bench/blast_radius.py --runs 1000 --seed 1

For every scenario and seeded run, the same simulated traffic (identical while the
policies hold the same weight) is fed to each policy: our judge (the operator's own
``judge.compare`` and ``progression.advance``), Wald's SPRT told the true rates (the
statistical limit, on the judge's weights), a model of Flagger's analysis loop at its
tutorial settings and at its fastest sensible ones, and an Argo Rollouts canary with a
background AnalysisTemplate (failureLimit 0 and 3). Printed per scenario and policy: how
often the canary was rolled back / promoted / neither within the horizon, with Wilson 95%
intervals, the median time to promotion, and the harm: failed requests served by the canary
(requests served slowly for a latency regression) until the rollback, or, when a bad canary
was promoted (an escape), until the end of the horizon at full traffic.
Results and discussion: docs/analysis.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence

from _policies import ArgoAnalysis, FlaggerThreshold, OurJudge, Policy, WaldSprt
from _traffic import (
    AT_A_BUCKET_BOUND,
    ISTIO_BUCKETS_MS,
    Burst,
    Scenario,
    bucket_probabilities,
    simulate_interval,
)
from istio_canary.models.analysis import AnalysisSpec
from rich.console import Console
from rich.table import Table

LOOK_S = 5
"""Seconds between looks: the recommended Prometheus scrape interval, the judge's intervalSeconds."""
CAP_S = 1800
"""The horizon: a run that has neither rolled back nor promoted by then is undecided, and a
promoted bad canary does harm at full traffic until then."""

# The judge's spec: a 2% probe, then 10..50%, looks every scrape; the error tolerance is half a
# percentage point, so that the 1% scenario (against stable's 0.1%) is a regression.
SPEC = AnalysisSpec(max_error_rate_increase=0.005, probe_weight=2, interval_seconds=LOOK_S,
                    scrape_interval_seconds=LOOK_S)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("good canary", rate_rps=50),
    Scenario("1% errors", rate_rps=50, canary_error_rate=0.01),
    Scenario("5% errors", rate_rps=50, canary_error_rate=0.05),
    Scenario("50% errors", rate_rps=50, canary_error_rate=0.5),
    Scenario("+200 ms latency", rate_rps=50, canary_extra_latency_ms=200),
    Scenario("good, p99 at a bucket bound", rate_rps=50, latency=AT_A_BUCKET_BOUND),
    Scenario("good, both at 2% errors", rate_rps=50, stable_error_rate=0.02, canary_error_rate=0.02),
    Scenario("good, shared 3% burst, jitter", rate_rps=50, rate_jitter=0.3,
             burst=Burst(start_s=30, duration_s=600, extra_error_rate=0.03, jitter=0.8)),
)


@dataclasses.dataclass(frozen=True)
class Outcome:
    decision: str  # "rollback" | "promote" | "undecided"
    seconds: int
    harm: float


def run_release(policy: Policy, scenario: Scenario, *, seed: int) -> Outcome:
    """One release under one policy; the seed fixes the traffic."""
    rng = random.Random(seed)
    stable_buckets = bucket_probabilities(0.0, scenario.latency)
    canary_buckets = bucket_probabilities(scenario.canary_extra_latency_ms, scenario.latency)
    harm, t = 0.0, 0
    while t < CAP_S:
        share = policy.weight / 100
        t += LOOK_S
        rate = scenario.rate_at(t, seed=seed) * LOOK_S
        stable = simulate_interval(rng, mean_requests=rate * (1 - share), buckets=stable_buckets,
                                   error_rate=scenario.error_rate(canary=False, t=t, seed=seed))
        canary = simulate_interval(rng, mean_requests=rate * share, buckets=canary_buckets,
                                   error_rate=scenario.error_rate(canary=True, t=t, seed=seed))
        harm += canary.requests if scenario.canary_extra_latency_ms else canary.errors
        decision = policy.observe(t=t, stable=stable, canary=canary)
        if decision == "fail":
            return Outcome("rollback", t, harm)
        if decision == "promote":
            # An escape keeps doing harm at full traffic until the horizon.
            per_request = 1.0 if scenario.canary_extra_latency_ms else scenario.canary_error_rate
            if scenario.canary_is_bad:
                harm += scenario.rate_rps * (CAP_S - t) * per_request
            return Outcome("promote", t, harm)
    return Outcome("undecided", t, harm)


def policies_for(scenario: Scenario, spec: AnalysisSpec) -> list[Callable[[], Policy]]:
    """Fresh-policy factories; the SPRT is told this scenario's true rates."""
    stable = bucket_probabilities(0.0, scenario.latency)
    cumulative = [sum(stable[: i + 1]) for i in range(len(stable))]
    # The slow bound: the highest bucket bound with at least 1 - latencyQuantile of stable's
    # requests above it, so that the slow test has events to count whatever the layout.
    bound_index = max(0, next(i for i, c in enumerate(cumulative) if c >= spec.latency_quantile) - 1)
    slow_bound = ISTIO_BUCKETS_MS[bound_index]

    def slow_fraction(extra_ms: float) -> float:
        probabilities = bucket_probabilities(extra_ms, scenario.latency)
        return min(1 - 1e-9, max(1e-9, sum(probabilities[bound_index + 1:])))

    # A good canary has no true alternative; the SPRT then guards against the mildest
    # regression worth catching (the tolerance plus a little, +50 ms).
    p0 = scenario.stable_error_rate
    p1 = scenario.canary_error_rate if scenario.canary_error_rate > p0 else p0 + 0.009
    extra = scenario.canary_extra_latency_ms or 50.0
    return [
        lambda: OurJudge(spec),
        lambda: WaldSprt(p0=p0, p1=p1, q0=slow_fraction(0.0), q1=slow_fraction(extra), slow_bound_ms=slow_bound,
                         spec=spec),
        lambda: FlaggerThreshold(name="flagger-tutorial", interval_s=60, look_s=LOOK_S, threshold=5),
        lambda: FlaggerThreshold(name="flagger-fast", interval_s=10, look_s=LOOK_S, threshold=2,
                                 metric_window_s=30),
        lambda: ArgoAnalysis(name="argo-limit-0", failure_limit=0, look_s=LOOK_S),
        lambda: ArgoAnalysis(name="argo-limit-3", failure_limit=3, look_s=LOOK_S),
    ]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a proportion (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def share_with_interval(successes: int, n: int) -> str:
    low, high = wilson(successes, n)
    return f"{successes / n:.1%} [{low:.1%}, {high:.1%}]"


@dataclasses.dataclass(frozen=True)
class Summary:
    """One policy's runs of one scenario."""

    name: str
    outcomes: tuple[Outcome, ...]

    def count(self, decision: str) -> int:
        return sum(o.decision == decision for o in self.outcomes)

    def mean_harm(self) -> float:
        return statistics.fmean(o.harm for o in self.outcomes)

    def harm_half_width(self) -> float:
        harms = [o.harm for o in self.outcomes]
        return 1.96 * statistics.stdev(harms) / math.sqrt(len(harms)) if len(harms) > 1 else 0.0

    def median_promotion_s(self) -> float | None:
        times = [o.seconds for o in self.outcomes if o.decision == "promote"]
        return statistics.median(times) if times else None


def run_scenario(scenario: Scenario, *, runs: int, seed: int, spec: AnalysisSpec = SPEC) -> dict[str, Summary]:
    """Every policy over ``runs`` seeded traces of ``scenario``."""
    summaries = {}
    for factory in policies_for(scenario, spec):
        name = factory().name
        outcomes = tuple(run_release(factory(), scenario, seed=seed + i) for i in range(runs))
        summaries[name] = Summary(name, outcomes)
    return summaries


def scenario_table(scenario: Scenario, summaries: dict[str, Summary], runs: int) -> Table:
    table = Table(title=f"{scenario.name} ({scenario.rate_rps:g} req/s, {runs} runs)")
    for column in ("policy", "rolled back [95%]", "promoted [95%]", "undecided", "median s to promote",
                   "mean harm [95%]", "p95 harm"):
        table.add_column(column, justify="right")
    for name, summary in summaries.items():
        harms = sorted(o.harm for o in summary.outcomes)
        median = summary.median_promotion_s()
        table.add_row(
            name, share_with_interval(summary.count("rollback"), runs),
            share_with_interval(summary.count("promote"), runs), f"{summary.count('undecided') / runs:.1%}",
            f"{median:.0f}" if median is not None else "-",
            f"{summary.mean_harm():.1f} ± {summary.harm_half_width():.1f}" if scenario.canary_is_bad else "-",
            f"{harms[int(0.95 * (len(harms) - 1))]:.0f}" if scenario.canary_is_bad else "-",
        )
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="seeded runs per scenario")
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    args = parser.parse_args(argv)
    console = Console(width=150)
    started = time.perf_counter()
    summary = Table(title="Summary: harm against the judge's, and the judge's decisions")
    for column in ("scenario", "judge / SPRT harm", "flagger-tutorial / judge", "flagger-fast / judge",
                   "argo-0 / judge", "argo-3 / judge", "judge rolled back", "judge promoted",
                   "judge / SPRT time to promote"):
        summary.add_column(column, justify="right")
    for scenario in SCENARIOS:
        if args.only not in scenario.name:
            continue
        summaries = run_scenario(scenario, runs=args.runs, seed=args.seed)
        console.print(scenario_table(scenario, summaries, args.runs))
        summary.add_row(*summary_row(scenario, summaries, args.runs))
    console.print(summary)
    console.print(f"{time.perf_counter() - started:.0f} s")


def summary_row(scenario: Scenario, summaries: dict[str, Summary], runs: int) -> list[str]:
    judge = summaries["judge"]
    harm = judge.mean_harm()
    ratios = ["-"] * 5
    if scenario.canary_is_bad:
        others = ("flagger-tutorial", "flagger-fast", "argo-limit-0", "argo-limit-3")
        ratios = [_ratio(harm, summaries["wald-sprt"].mean_harm()),
                  *(_ratio(summaries[o].mean_harm(), harm) for o in others)]
    ours, oracle = judge.median_promotion_s(), summaries["wald-sprt"].median_promotion_s()
    speed = _ratio(ours, oracle) if ours is not None and oracle is not None else "-"
    return [scenario.name, *ratios, share_with_interval(judge.count("rollback"), runs),
            share_with_interval(judge.count("promote"), runs), speed]


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "inf"


if __name__ == "__main__":
    main()
