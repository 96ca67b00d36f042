"""Blast-radius benchmark: how much harm a bad canary does before each policy stops it.

Run from the repository root, with the operator package installed::

    python bench/blast_radius.py --runs 500 --seed 1

For every scenario and seeded run, the same simulated traffic (identical while the
policies hold the same weight) is fed to three policies: our judge
(``istio_canary.analysis.judge``), Wald's SPRT told the true rates (the statistical limit),
and a Flagger-style threshold policy. Printed per scenario and policy: how often the canary
was rolled back / promoted / neither within the time cap, the mean time to that decision,
and the mean harm the canary did first: failed requests for an error regression, requests
served slowly for a latency regression. Results and discussion: docs/analysis.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time
from collections.abc import Callable, Sequence

from _policies import FlaggerThreshold, OurJudge, Policy, WaldSprt
from _traffic import ISTIO_BUCKETS_MS, Burst, Scenario, bucket_probabilities, simulate_interval
from istio_canary.analysis import counts as counts_
from istio_canary.models.analysis import AnalysisSpec
from rich.console import Console
from rich.table import Table

LOOK_S = 10
"""Seconds between looks: one Prometheus scrape interval, the judge's intervalSeconds."""
CAP_S = 1800
"""A run that has neither rolled back nor promoted after this long counts as undecided."""

# The judge's spec for every scenario. The error tolerance is half a percentage point, so
# that the 1% scenario (against stable's 0.1%) is a regression; everything else is default.
SPEC = AnalysisSpec(max_error_rate_increase=0.005)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("good canary", rate_rps=50),
    Scenario("1% errors", rate_rps=50, canary_error_rate=0.01),
    Scenario("5% errors", rate_rps=50, canary_error_rate=0.05),
    Scenario("50% errors", rate_rps=50, canary_error_rate=0.5),
    Scenario("+50 ms latency", rate_rps=50, canary_extra_latency_ms=50),
    Scenario("+200 ms latency", rate_rps=50, canary_extra_latency_ms=200),
    Scenario("good, service-wide burst", rate_rps=50,
             burst=Burst(start_s=20, duration_s=60, extra_error_rate=0.2)),
    # Flagger's harm grows with traffic, a sequential test's does not: the same regressions
    # at ten times the traffic.
    Scenario("1% errors, 500 req/s", rate_rps=500, canary_error_rate=0.01),
    Scenario("5% errors, 500 req/s", rate_rps=500, canary_error_rate=0.05),
    Scenario("good, 1 req/s", rate_rps=1),
    Scenario("20% errors, 1 req/s", rate_rps=1, canary_error_rate=0.2),
)


@dataclasses.dataclass(frozen=True)
class Outcome:
    decision: str  # "rollback" | "promote" | "undecided"
    seconds: int
    harm: int


def run_release(policy: Policy, scenario: Scenario, *, seed: int, weights: Sequence[int]) -> Outcome:
    """One release under one policy; the seed fixes the traffic."""
    rng = random.Random(seed)
    stable_buckets = bucket_probabilities(0.0)
    canary_buckets = bucket_probabilities(scenario.canary_extra_latency_ms)
    step, harm, t = 0, 0, 0
    policy.start_step()
    while t < CAP_S:
        t += LOOK_S
        share = weights[step] / 100
        stable = simulate_interval(rng, mean_requests=scenario.rate_rps * LOOK_S * (1 - share),
                                   error_rate=scenario.error_rate(canary=False, t=t),
                                   buckets=stable_buckets)
        canary = simulate_interval(rng, mean_requests=scenario.rate_rps * LOOK_S * share,
                                   error_rate=scenario.error_rate(canary=True, t=t),
                                   buckets=canary_buckets)
        harm += canary.requests if scenario.canary_extra_latency_ms else canary.errors
        decision = policy.observe(t=t, stable=stable, canary=canary)
        if decision == "fail":
            return Outcome("rollback", t, harm)
        if decision == "pass":
            step += 1
            if step == len(weights):
                return Outcome("promote", t, harm)
            policy.start_step()
    return Outcome("undecided", t, harm)


def policies_for(scenario: Scenario, spec: AnalysisSpec) -> list[Callable[[], Policy]]:
    """Fresh-policy factories; the SPRT is told this scenario's true rates."""
    weights = spec.weights()
    alpha = spec.max_false_rollback_rate / (2 * len(weights))
    stable = bucket_probabilities(0.0)
    # The reference's slow bound: the bucket holding stable's true p99 (100 ms here).
    cumulative = [sum(stable[: i + 1]) for i in range(len(stable))]
    bound_index = next(i for i, c in enumerate(cumulative) if c >= spec.latency_quantile)
    slow_bound = ISTIO_BUCKETS_MS[bound_index]

    def slow_fraction(extra_ms: float) -> float:
        probabilities = bucket_probabilities(extra_ms)
        # The SPRT needs 0 < q < 1; +200 ms puts every canary request above the bound.
        return min(1 - 1e-9, max(1e-9, sum(probabilities[bound_index + 1:])))

    # A good canary has no true alternative; the SPRT then guards against the mildest
    # regression of the benchmark (1% errors, +50 ms).
    p1 = scenario.canary_error_rate if scenario.canary_error_rate > scenario.stable_error_rate else 0.01
    extra = scenario.canary_extra_latency_ms or 50.0
    stable_p99 = counts_.quantile(
        tuple(zip(ISTIO_BUCKETS_MS, cumulative, strict=True)), spec.latency_quantile
    ) or 0.0
    return [
        lambda: OurJudge(spec),
        lambda: WaldSprt(p0=scenario.stable_error_rate, p1=p1, q0=slow_fraction(0.0),
                         q1=slow_fraction(extra), slow_bound_ms=slow_bound, alpha=alpha,
                         beta=spec.max_false_promotion_rate),
        lambda: FlaggerThreshold(interval_s=60, look_s=LOOK_S, min_success_rate=0.99,
                                 max_p99_ms=stable_p99 + spec.max_latency_increase_ms,
                                 failed_checks=5),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="seeded runs per scenario")
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--only", default="", help="run the scenarios whose name contains this")
    args = parser.parse_args(argv)
    console = Console(width=110)
    started = time.perf_counter()
    summary = Table(title="Summary: mean harm before rollback, and false rollbacks")
    for column in ("scenario", "judge / SPRT harm", "flagger / judge harm", "flagger / SPRT harm",
                   "judge false rollbacks"):
        summary.add_column(column, justify="right")

    for scenario in SCENARIOS:
        if args.only not in scenario.name:
            continue
        table = Table(title=f"{scenario.name} ({scenario.rate_rps:g} req/s, {args.runs} runs)")
        for column in ("policy", "rolled back", "promoted", "undecided",
                       "mean s to decision", "mean harm", "p95 harm"):
            table.add_column(column, justify="right")
        harm_by_policy: dict[str, float] = {}
        rollbacks_by_policy: dict[str, float] = {}
        for factory in policies_for(scenario, SPEC):
            outcomes = [
                run_release(factory(), scenario, seed=args.seed + i, weights=SPEC.weights())
                for i in range(args.runs)
            ]
            name = factory().name
            decided = [o for o in outcomes if o.decision != "undecided"]
            harms = sorted(o.harm for o in outcomes)
            share = {d: sum(o.decision == d for o in outcomes) / args.runs
                     for d in ("rollback", "promote", "undecided")}
            harm_by_policy[name] = statistics.fmean(harms)
            rollbacks_by_policy[name] = share["rollback"]
            table.add_row(
                name, f"{share['rollback']:.1%}", f"{share['promote']:.1%}",
                f"{share['undecided']:.1%}",
                f"{statistics.fmean(o.seconds for o in decided):.0f}" if decided else "-",
                f"{harm_by_policy[name]:.1f}" if scenario.canary_is_bad else "-",
                f"{harms[int(0.95 * (len(harms) - 1))]}" if scenario.canary_is_bad else "-",
            )
        console.print(table)
        if scenario.canary_is_bad:
            ours = harm_by_policy["judge"]
            summary.add_row(scenario.name, _ratio(ours, harm_by_policy["wald-sprt"]),
                            _ratio(harm_by_policy["flagger"], ours),
                            _ratio(harm_by_policy["flagger"], harm_by_policy["wald-sprt"]), "-")
        else:
            summary.add_row(scenario.name, "-", "-", "-", f"{rollbacks_by_policy['judge']:.1%}")
    console.print(summary)
    console.print(f"{time.perf_counter() - started:.0f} s")


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "inf"


if __name__ == "__main__":
    main()
