"""The invariant monitor on the real API server: it sees every kind, and it catches a broken state."""

from __future__ import annotations

from devcluster import Cluster

from tests.e2e.helpers import apply, deploy_bookinfo, example_release
from tests.invariants.monitor import InvariantMonitor
from tests.invariants.revisions import KINDS, Rule


def test_monitor_records_every_kind_and_reports_weight_on_a_version_without_pods(
    cluster: Cluster, namespace: str
) -> None:
    monitor = InvariantMonitor(cluster.api_client, namespace).start()
    try:
        deploy_bookinfo(cluster, namespace)
        apply(cluster, namespace, example_release())  # no operator: the routing below is written by hand
        subsets = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]
        apply(cluster, namespace, {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews"},
            "spec": {"host": "reviews", "subsets": subsets},
        })
        # Istio's webhook accepts it: nothing tells it that no pod has version=v2.
        apply(cluster, namespace, {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                {"destination": {"host": "reviews", "subset": "v2"}, "weight": 50},
            ]}]},
        })
    finally:
        monitor.stop()
    counts = monitor.counts()
    assert all(counts[kind] > 0 for kind in KINDS), counts
    found = monitor.violations()
    assert [(v.rule, v.subject) for v in found] == [(Rule.NO_READY_POD, "VirtualService/reviews")], found
    assert "subset v2 of reviews" in found[0].message
