"""Two replicas with kopf peering: exactly one acts, and killing it hands the releases over.

Both processes watch the namespace with ``--peering``; kopf gives them distinct priorities, the
lower one pauses while the higher one is alive, and resumes when its peer stops refreshing the
peering object. Under the invariant monitor: no state in the hand-over breaks an invariant.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from devcluster import Cluster

from tests.e2e.helpers import (
    apply,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    route_weights,
    wait_for,
)
from tests.e2e.processes import OperatorProcess

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("invariant_monitor")]

CHART = Path(__file__).resolve().parents[2] / "charts" / "istio-canary-operator"
PEERING_CRDS = CHART / "crds" / "kopf.dev_peerings.yaml"
RECONCILED = '"event": "release reconciled"'


def _split(cluster: Cluster, ns: str, canary: int) -> bool:
    said = (((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}).get("traffic") or {})
    weights = route_weights(get(cluster, "virtualservice", "reviews", ns) or {})
    return weights == [{"v1": 100 - canary, "v2": canary}] and said.get("canary") == canary


def test_one_of_two_replicas_acts_and_killing_it_hands_over_to_the_other(cluster: Cluster, namespace: str) -> None:
    ns = namespace
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    apply(cluster, ns, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "canary"}})
    deploy_bookinfo(cluster, ns)
    replicas = [_replica(cluster, ns, index) for index in range(2)]
    try:
        time.sleep(15)  # both have started and seen each other in the peering object
        apply(cluster, ns, example_release())
        wait_for(lambda: _split(cluster, ns, 30), timeout=180, what="30% with two replicas")
        time.sleep(5)
        acted = [r for r in replicas if RECONCILED in r.logs()]
        assert len(acted) == 1, f"{len(acted)} replicas reconciled: exactly one must act"
        active, standby = acted[0], next(r for r in replicas if r is not acted[0])

        active.kill()
        killed_at = time.monotonic()
        patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 60}})
        wait_for(lambda: _split(cluster, ns, 60), timeout=240, what="60% carried out by the standby")
        handover = time.monotonic() - killed_at
        assert RECONCILED in standby.logs() and standby.proc is not None and standby.proc.poll() is None
        print(f"two replicas: one acted; the standby carried out an edit {handover:.0f} s after the active one died")
    finally:
        for replica in replicas:
            replica.stop()


def _replica(cluster: Cluster, ns: str, index: int) -> OperatorProcess:
    """One replica, logging to a file of its own (which one acted is read from them)."""
    replica = OperatorProcess(cluster, ns, ["--peering", "canary"], {"PYTHONUNBUFFERED": "1"})
    replica.log_path = replica.log_path.with_name(f"operator-{ns}-replica{index}.log")
    return replica.start()
