"""Killing the operator at any point never strands traffic, and the release always converges."""

from __future__ import annotations

import random
from typing import Any

import yaml
from devcluster import Cluster

from tests.e2e.helpers import (
    EXAMPLES,
    apply,
    assert_routing_invariants,
    deploy_bookinfo,
    get,
    patch_spec,
    wait_for,
)


def _phase(cluster: Cluster, ns: str) -> str:
    return str(((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}).get("phase", ""))


def test_operator_killed_again_and_again_through_the_whole_flow_still_converges(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    release = yaml.safe_load((EXAMPLES / "canary-weight.yaml").read_text())
    apply(cluster, ns, release)
    rng = random.Random(20261126)
    # Each stage is a spec edit and the phase it must reach; every operator process dies
    # (os._exit, no cleanup) after 1 to 3 writes, wherever that falls.
    stages: list[tuple[dict[str, Any], str]] = [
        ({}, "Progressing"),
        ({"traffic": {"weight": 80}}, "Progressing"),
        ({"takeOver": "v2"}, "TakenOver"),
        ({"offline": True}, "Completed"),
    ]
    crashes = 0
    for patch, phase in stages:
        if patch:
            patch_spec(cluster, ns, "reviews", patch)
        for _ in range(12):
            if _phase(cluster, ns) == phase and _settled(cluster, ns, patch):
                break
            op = start_operator(env={"ISTIO_CANARY_CRASH_AFTER_WRITES": str(rng.randint(1, 3))})

            def crashed_or_done(op: Any = op, phase: str = phase, patch: dict[str, Any] = patch) -> bool:
                died = op.proc is not None and op.proc.poll() is not None
                return died or (_phase(cluster, ns) == phase and _settled(cluster, ns, patch))

            try:
                # Generous: on a loaded 2-core machine a fresh process takes a while to sync its watches.
                wait_for(crashed_or_done, timeout=90, what=f"operator to crash or reach {phase}")
            finally:
                op.kill()
            crashes += 1
            assert_routing_invariants(cluster, ns, "reviews")
        assert _phase(cluster, ns) == phase, f"stuck before {phase} after {crashes} crashes"
    assert crashes >= len(stages)
    assert get(cluster, "deployment", "reviews-v1", ns) is None
    vs = get(cluster, "virtualservice", "reviews", ns)
    assert vs is not None and [d["destination"]["subset"] for d in vs["spec"]["http"][0]["route"]] == ["v2"]


def _settled(cluster: Cluster, ns: str, patch: dict[str, Any]) -> bool:
    obj = get(cluster, "canaryrelease", "reviews", ns) or {}
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj.get("metadata", {}).get("generation"):
        return False
    want = patch.get("traffic", {}).get("weight")
    return want is None or (status.get("traffic") or {}).get("canary") == want
