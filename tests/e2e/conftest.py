"""Fixtures for e2e tests: one local cluster and one Prometheus per test session.

The cluster is reused when one with the same name already answers (``make cluster-up`` or a
parallel session), and only a cluster this session started is torn down at the end.
Every test gets its own namespace, so tests share the cluster without seeing each other.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from devcluster import Cluster, PrometheusServer

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
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
