"""The blast-radius benchmark in short: a few seeds per scenario, the peers' models tick by tick, Wilson's interval."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # the bench's scripts import their helpers by file name
    try:
        return importlib.import_module("blast_radius")
    finally:
        sys.path.remove(str(BENCH))


def scenario(bench: ModuleType, name: str) -> object:
    return next(s for s in bench.SCENARIOS if s.name == name)


def test_a_few_seeds_show_the_judge_stopping_a_gross_failure_near_the_limit_and_far_before_flagger(
    bench: ModuleType,
) -> None:
    runs = bench.run_scenario(scenario(bench, "50% errors"), runs=8, seed=1)
    judge, oracle, flagger = runs["judge"], runs["wald-sprt"], runs["flagger-tutorial"]
    assert judge.count("rollback") == 8
    assert judge.mean_harm() <= 2 * oracle.mean_harm()
    assert flagger.mean_harm() >= 20 * judge.mean_harm()


def test_a_few_seeds_promote_a_good_canary_whose_p99_sits_at_a_bucket_bound(bench: ModuleType) -> None:
    runs = bench.run_scenario(scenario(bench, "good, p99 at a bucket bound"), runs=8, seed=1)
    judge = runs["judge"]
    assert judge.count("promote") == 8
    median = judge.median_promotion_s()
    assert median is not None and median < 600


def window(bench: ModuleType, *, requests: int, errors: int = 0) -> object:
    traffic = sys.modules["_traffic"]  # loaded with the bench
    per_bucket = [0] * len(traffic.ISTIO_BUCKETS_MS)
    per_bucket[4] = requests
    return traffic.Window(requests=requests, errors=errors, per_bucket=per_bucket)


def test_the_flagger_model_rolls_back_at_the_tick_after_the_threshold_and_counts_no_data_as_failed(
    bench: ModuleType,
) -> None:
    policies = sys.modules["_policies"]
    flagger = policies.FlaggerThreshold(name="f", interval_s=10, look_s=10, threshold=2)
    stable = window(bench, requests=100)
    decisions = [flagger.observe(t=10, stable=stable, canary=window(bench, requests=0))]  # first tick: weight only
    assert flagger.weight == 10
    decisions.append(flagger.observe(t=20, stable=stable, canary=window(bench, requests=0)))  # no data: failed
    decisions.append(flagger.observe(t=30, stable=stable, canary=window(bench, requests=10, errors=5)))  # failed
    decisions.append(flagger.observe(t=40, stable=stable, canary=window(bench, requests=10)))  # the next tick
    assert decisions == [None, None, None, "fail"]


def test_the_argo_model_aborts_past_its_failure_limit_and_promotes_after_its_fixed_steps(bench: ModuleType) -> None:
    policies = sys.modules["_policies"]
    strict = policies.ArgoAnalysis(name="a0", failure_limit=0, look_s=60)
    failing = window(bench, requests=50, errors=1)
    assert strict.observe(t=60, stable=window(bench, requests=100), canary=failing) == "fail"
    lenient = policies.ArgoAnalysis(name="a3", failure_limit=3, look_s=60)
    decisions = [lenient.observe(t=60 * i, stable=window(bench, requests=100), canary=window(bench, requests=50,
                                                                                           errors=1))
                 for i in range(1, 5)]
    assert decisions == [None, None, None, "fail"]
    good = policies.ArgoAnalysis(name="a3", failure_limit=3, look_s=60)
    weights, decisions = [], []
    for i in range(1, 6):
        weights.append(good.weight)
        decisions.append(good.observe(t=60 * i, stable=window(bench, requests=100), canary=window(bench, requests=50)))
    assert weights == [10, 20, 30, 40, 50] and decisions[-1] == "promote" and decisions[:-1] == [None] * 4


@pytest.mark.parametrize(("successes", "n", "low", "high"), [(0, 100, 0.0, 0.037), (50, 100, 0.404, 0.596),
                                                              (1000, 1000, 0.996, 1.0)])
def test_wilson_intervals_match_the_textbook_values(
    bench: ModuleType, successes: int, n: int, low: float, high: float
) -> None:
    got_low, got_high = bench.wilson(successes, n)
    assert got_low == pytest.approx(low, abs=0.001) and got_high == pytest.approx(high, abs=0.001)
