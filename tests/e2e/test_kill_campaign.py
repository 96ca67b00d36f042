"""Kill campaign: the operator SIGKILLed at random moments while releases of every strategy run.

Four releases share a namespace (one per Bookinfo Service) and each walks its plan, spec edit
after spec edit, while operator processes are started and killed: half of them die right after
a random number of API writes (ISTIO_CANARY_CRASH_AFTER_WRITES, mid-reconcile), every one is
SIGKILLed after a random lifetime if still alive. A fresh process is started each time. Then one
last process runs unharmed: every release must reach the end state its last spec asks for, and
the invariant monitor must have seen no violation in any state in between.

The default suite runs a tenth of the campaign (10 kills); ``make reliability`` runs 100.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from devcluster import Cluster, PrometheusServer
from meshsim.simulator import Simulator

from tests.e2e.campaign import Plan, Stage, campaign_count, end_state_problems, release
from tests.e2e.helpers import apply, deploy_bookinfo, get, wait_for
from tests.e2e.processes import OperatorProcess
from tests.invariants.monitor import InvariantMonitor

pytestmark = pytest.mark.reliability

KILLS = campaign_count(100)
CRASH_AFTER_WRITES = "ISTIO_CANARY_CRASH_AFTER_WRITES"
SERVICES = ("productpage", "details", "ratings", "reviews")
# A process killed between its routing write and its status write leaves status.traffic behind
# the routes until the next process has started and reconciled: on a loaded 2-core machine
# (load average above 25) that has taken up to 50 s.
STATUS_GRACE = 120.0


@dataclass
class KillReport:
    kills: int = 0
    died_mid_write: int = 0
    """Processes that died of the injected fault, right after an API write."""
    acted: int = 0
    """Processes that handled a release before they died (the others died while starting up)."""
    mid_flight: int = 0
    """Kills while some release had not reached the end of its plan."""
    stages_applied: int = 0


def _analysis_release() -> dict[str, Any]:
    body = release("reviews", "canary-analysis.yaml")
    body["spec"]["analysis"].update(
        {"intervalSeconds": 2, "steps": [20, 50], "minRequests": 20, "maxErrorRateIncrease": 0.05,
         "latencyQuantile": 0.9, "promotion": "Offline"}
    )
    return body


def first_round() -> list[Plan]:
    """Analysis to completion, weight to offline, match then abort, blue-green to take over."""
    return [
        Plan("reviews", _analysis_release(), [Stage("Completed")]),
        Plan("ratings", release("ratings", traffic={"weight": 30}), [
            Stage("Progressing", canary_weight=30),
            Stage("Progressing", {"traffic": {"weight": 80}}, canary_weight=80),
            Stage("TakenOver", {"takeOver": "v2"}),
            Stage("Completed", {"offline": True}),
        ]),
        Plan("details", release("details", "canary-match.yaml"), [
            Stage("Progressing", canary_weight=10), Stage("Aborted", {"abort": True}),
        ]),
        Plan("productpage", release("productpage", "blue-green.yaml"), [
            Stage("Progressing", canary_weight=0), Stage("TakenOver", {"takeOver": "v2"}),
        ]),
    ]


def second_round() -> list[Plan]:
    """Mirror then deleted, weight then deleted mid-flight, blue-green then aborted, match to offline."""
    return [
        Plan("reviews", release("reviews", "mirror.yaml"), [
            Stage("Progressing", canary_weight=0), Stage("", delete=True),
        ]),
        Plan("ratings", release("ratings", traffic={"weight": 50}), [
            Stage("Progressing", canary_weight=50), Stage("", delete=True),
        ]),
        Plan("details", release("details", "blue-green.yaml"), [
            Stage("Progressing", canary_weight=0), Stage("TakenOver", {"takeOver": "v2"}),
            Stage("Aborted", {"abort": True}),
        ]),
        Plan("productpage", release("productpage", "canary-match.yaml"), [
            Stage("Progressing", canary_weight=10), Stage("TakenOver", {"takeOver": "v2"}),
            Stage("Completed", {"offline": True}),
        ]),
    ]


def run_kill_campaign(
    cluster: Cluster, namespace: str, plans: Sequence[Plan], *, kills: int, seed: int,
    start_operator: Callable[..., OperatorProcess], operator_args: Sequence[str] = (),
) -> tuple[KillReport, InvariantMonitor]:
    """Walk ``plans`` while ``kills`` operator processes die; then converge with one left alone."""
    rng, report = random.Random(seed), KillReport()
    monitor = InvariantMonitor(cluster.api_client, namespace, status_grace=STATUS_GRACE).start()
    try:
        for plan in plans:
            apply(cluster, namespace, plan.body)
        while report.kills < kills:
            # Unbuffered: a SIGKILLed process's last log lines are evidence of what it did.
            env = {"PYTHONUNBUFFERED": "1"}
            if rng.random() < 0.5:
                env[CRASH_AFTER_WRITES] = str(rng.randint(1, 6))
            log = cluster.state_dir / f"operator-{namespace}.log"
            logged = log.stat().st_size if log.exists() else 0
            operator = start_operator(*operator_args, env=env)
            # A fresh process takes a while to start on a loaded machine: the random moment is
            # counted from its first handled release, so that no kill is spent on a start-up.
            acting = _walk(cluster, namespace, plans, report, operator=operator, until=time.monotonic() + 120,
                           stop=functools.partial(_handled_since, log, logged))
            done = _walk(cluster, namespace, plans, report, operator=operator,
                         until=time.monotonic() + rng.uniform(0.0, 6.0))
            died = operator.proc is not None and operator.proc.poll() is not None
            operator.kill()
            report.kills += 1
            report.died_mid_write += died
            report.mid_flight += not done
            report.acted += acting or died or _handled_a_release(log.read_bytes()[logged:])
        survivor = start_operator(*operator_args)
        wait_for(lambda: _walk(cluster, namespace, plans, report, until=0, operator=survivor), timeout=300,
                 what="every release at the end of its plan: " + ", ".join(f"{p.name}@{p.at}" for p in plans))
    finally:
        monitor.stop()
    return report, monitor


def _walk(
    cluster: Cluster, namespace: str, plans: Sequence[Plan], report: KillReport, *, until: float,
    operator: OperatorProcess, stop: Callable[[], bool] | None = None,
) -> bool:
    """Move every plan on while ``operator`` lives, until ``until`` (0: one pass) or ``stop()``.

    True when every plan is done (with ``stop``: when ``stop()`` said so).
    """
    while True:
        for plan in plans:
            before = plan.at
            plan.advance(cluster, namespace)
            report.stages_applied += plan.at - before
        finished = all(plan.finished for plan in plans)
        if stop is not None and (stop() or finished):
            return stop()
        if time.monotonic() >= until or (operator.proc is not None and operator.proc.poll() is not None):
            return finished
        time.sleep(0.2)


def _handled_since(log: Path, offset: int) -> bool:
    return _handled_a_release(log.read_bytes()[offset:])


def _handled_a_release(log: bytes) -> bool:
    """Whether a process's log shows it reconciling (or failing to reconcile) a release."""
    return b'"logger": "istio_canary"' in log or b"Handler '" in log


def _bookinfo_ready(cluster: Cluster, namespace: str) -> None:
    deploy_bookinfo(cluster, namespace)
    for service in SERVICES:
        name = f"{service}-v1"

        def ready(name: str = name) -> int:
            status = (get(cluster, "deployment", name, namespace) or {}).get("status") or {}
            return int(status.get("readyReplicas") or 0)

        wait_for(ready, timeout=90, what=f"{name} ready")


def _assert_campaign(cluster: Cluster, namespace: str, plans: Sequence[Plan], report: KillReport,
                     monitor: InvariantMonitor, kills: int) -> None:
    problems = {plan.name: end_state_problems(cluster, namespace, plan) for plan in plans}
    print(f"kill campaign: {report}, revisions {dict(monitor.counts())}")
    assert report.kills == kills
    assert report.stages_applied == sum(len(plan.stages) - 1 for plan in plans)
    assert all(not found for found in problems.values()), problems
    monitor.assert_clean()


def test_kills_across_analysis_weight_match_and_blue_green_releases_break_no_invariant(
    cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess],
    mesh: Simulator, prometheus: PrometheusServer,
) -> None:
    _bookinfo_ready(cluster, namespace)
    mesh.set_load(namespace=namespace, service="reviews", rps=60)
    plans, kills = first_round(), (KILLS + 1) // 2
    args = ("--prometheus-url", prometheus.url, "--metrics-interval", "2", "--metrics-window", "15")
    report, monitor = run_kill_campaign(
        cluster, namespace, plans, kills=kills, seed=17_001, start_operator=start_operator, operator_args=args
    )
    _assert_campaign(cluster, namespace, plans, report, monitor, kills)


def test_kills_across_mirror_deleted_aborted_and_offline_releases_break_no_invariant(
    cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    _bookinfo_ready(cluster, namespace)
    plans, kills = second_round(), KILLS // 2
    report, monitor = run_kill_campaign(
        cluster, namespace, plans, kills=kills, seed=17_002, start_operator=start_operator
    )
    _assert_campaign(cluster, namespace, plans, report, monitor, kills)
