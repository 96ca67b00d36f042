"""``make demo``'s main flow, run on the test cluster: it completes and shows a 70/30 split,
routed by the Envoy routes the cluster's istiod generated."""

from __future__ import annotations

import io
import re
import sys

import pytest
from devcluster import Cluster, PrometheusServer
from rich.console import Console

from tests.e2e.helpers import EXAMPLES, get

sys.path.insert(0, str(EXAMPLES))
import demo_flow  # type: ignore[import-not-found]  # lives beside the demo script, not in a package


@pytest.fixture
def printed() -> io.StringIO:
    return io.StringIO()


def test_demo_flow_completes_and_prints_a_split_near_thirty_percent_for_v2(
    cluster: Cluster, namespace: str, prometheus: PrometheusServer, printed: io.StringIO, tmp_path: object
) -> None:
    target = demo_flow.Target(
        kubeconfig=cluster.kubeconfig, kubectl_binary=str(cluster.bin_dir / "kubectl"),
        istiod=cluster.istiod.grpc_address,
    )
    console = Console(file=printed, width=200, color_system=None)

    result = demo_flow.run_demo(
        target, namespace=namespace, prometheus=prometheus, console=console, split_seconds=8.0
    )

    text = printed.getvalue()
    assert result.phases[-1] == "Completed", text
    assert {"Progressing", "TakenOver", "Completed"} <= set(result.phases), text
    found = re.search(r"v1 (\d+) requests \(([\d.]+)%\), v2 (\d+) requests \(([\d.]+)%\)", text)
    assert found is not None, text
    v1_served, v2_served, v2_share = int(found[1]), int(found[3]), float(found[4])
    assert v1_served + v2_served >= 200, text  # enough requests for the share to mean something
    assert 22.0 <= v2_share <= 38.0, text
    assert result.split is not None and abs(result.split.share("v2") - v2_share) < 0.05
    assert result.taken_over is not None and result.taken_over.share("v2") == 100.0, text
    assert "VirtualService weights: v1 70% / v2 30%" in text
    # The split was routed by istiod's routes, and the demo says so.
    assert "requests are routed by the Envoy routes istiod generates" in text
    assert "routed by istiod's Envoy routes: v1 70% / v2 30%" in text
    assert result.split.routed_by == {"v1": 70, "v2": 30}
    # The operator's per-version metrics, read from Prometheus scraping the simulator.
    assert (result.split.metrics.get("v1") or {}).get("requestRate"), result.split.metrics
    # After job offline only v2 is left, and the demo removed its release on the way out.
    assert "reviews Deployments left: reviews-v2" in text
    assert get(cluster, "deployment", "reviews-v1", namespace) is None
    assert get(cluster, "canaryrelease", "reviews", namespace) is None
