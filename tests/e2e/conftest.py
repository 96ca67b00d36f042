"""Fixtures for e2e tests: one local cluster and one Prometheus per test session.

The cluster is reused when one with the same name already answers (``make cluster-up`` or a
parallel session), and only a cluster this session started is torn down at the end.
Every test gets its own namespace, so tests share the cluster without seeing each other.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from devcluster import Cluster, PrometheusServer
from meshsim.server import SimulatorServer
from meshsim.simulator import Simulator

from tests.e2e.processes import OperatorProcess
from tests.e2e.releases import ReleaseStarter
from tests.invariants.monitor import InvariantMonitor

CLUSTER_NAME = os.environ.get("ICO_TEST_CLUSTER", "istio-canary-test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    c = Cluster(name=CLUSTER_NAME)
    already_up = c.is_up() if (c.bin_dir / "kubectl").exists() else False
    if not already_up:
        c.build()
    c.up()
    yield c
    if not already_up and not os.environ.get("ICO_KEEP_CLUSTER"):
        c.down()


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    server = PrometheusServer(scrape_interval="1s")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted afterwards (without waiting)."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    # As Bookinfo's tutorial does: the namespace's pods get sidecars (else MeshOnly says otherwise).
    cluster.kubectl("label", "namespace", name, "istio-injection=enabled")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def invariant_monitor(
    cluster: Cluster, namespace: str, request: pytest.FixtureRequest
) -> Iterator[InvariantMonitor]:
    """Every revision of the namespace's routing, workloads and releases, checked when the test ends.

    The test fails if any state it went through broke an invariant (tests/invariants): weights
    not adding up to 100, weight on a missing subset or Service or on a version without a ready
    pod, a user's route or field lost, status.traffic out of step with the routes for too long.
    Requested before the operator starts, it stops after the operator does.
    ``@pytest.mark.monitor(status_grace=...)`` sets how long status.traffic may lag the routes.
    """
    marker = request.node.get_closest_marker("monitor")
    options = dict(marker.kwargs) if marker is not None else {}
    monitor = InvariantMonitor(cluster.api_client, namespace, **options).start()
    yield monitor
    monitor.stop()
    monitor.assert_clean()


@pytest.fixture
def start_operator(cluster: Cluster, namespace: str) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the operator for the test's namespace; every process is stopped afterwards."""
    started: list[OperatorProcess] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> OperatorProcess:
        op = OperatorProcess(cluster, namespace, list(extra), env).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def progressing_release(
    cluster: Cluster, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> ReleaseStarter:
    """The usual start of a test: Bookinfo deployed, the operator started, a release applied
    (the tutorial's canary by weight unless one is given) and Progressing, or in the phase
    ``until`` names. See :class:`tests.e2e.releases.ReleaseStarter`."""
    return ReleaseStarter(cluster, namespace, start_operator)


@pytest.fixture
def mesh_server(
    cluster: Cluster, namespace: str, prometheus: PrometheusServer
) -> Iterator[SimulatorServer]:
    """The mesh simulator for the test's namespace, served and scraped by the session's Prometheus.

    It routes by the Envoy configuration the cluster's istiod generates for a sidecar of the
    namespace (re-read on every push), not by its own reading of the VirtualServices. Its
    metrics carry ``destination_workload_namespace=<namespace>``, so tests never see each
    other's traffic even though they share one Prometheus.
    """
    sim = Simulator(
        cluster.api_client(),
        namespaces=[namespace],
        seed=7,
        istiod=cluster.istiod.grpc_address,
        xds_routes_binary=str(cluster.bin_dir / "istio-xds-routes"),
    )
    server = SimulatorServer(sim)
    server.start_in_thread()
    job = f"meshsim-{namespace}"
    prometheus.add_scrape_target(job, f"127.0.0.1:{server.port}")
    yield server
    prometheus.remove_scrape_target(job)
    server.stop_in_thread()


@pytest.fixture
def own_prometheus(mesh_server: SimulatorServer) -> Iterator[PrometheusServer]:
    """A Prometheus of the test's own scraping its mesh, for a test that stops Prometheus:
    the session's is never stopped, other tests use it."""
    own = PrometheusServer(scrape_interval="1s")
    own.start()
    try:
        own.add_scrape_target("meshsim", f"127.0.0.1:{mesh_server.port}")
        yield own
    finally:
        own.stop()


@pytest.fixture
def mesh(mesh_server: SimulatorServer) -> Simulator:
    """The simulator of :func:`mesh_server`, to steer from the test."""
    return mesh_server.simulator
