"""The Helm chart against the local control plane: the API server accepts every object, and
the operator's ServiceAccount gets exactly the access it needs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from devcluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "istio-canary-operator"
PEERING_CRDS = CHART / "crds" / "kopf.dev_peerings.yaml"

pytestmark = pytest.mark.e2e


def release_name(namespace: str) -> str:
    """Short and unique per test: cluster-scoped object names derive from it."""
    return f"ico-{namespace[-5:]}"


def render(cluster: Cluster, *, namespace: str, sets: list[str]) -> str:
    helm = cluster.bin_dir / "helm"
    if not helm.exists():
        pytest.skip(".bin/helm is missing: build it with hack/build-controlplane.sh")
    # helm renders for the cluster's version (`go install`-built helm would assume v1.20).
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    args = [str(helm), "template", release_name(namespace), str(CHART), "--namespace", namespace]
    args += ["--kube-version", version["gitVersion"]]
    for value in sets:
        args += ["--set", value]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def peering_crds(cluster: Cluster) -> None:
    # The chart's crds/ are installed by helm before its templates; kubectl needs them first.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/clusterkopfpeerings.kopf.dev",
        "crd/kopfpeerings.kopf.dev",
    )


@pytest.mark.usefixtures("peering_crds")
@pytest.mark.parametrize(
    "sets",
    [
        [],
        ["replicaCount=2", "prometheus.url=http://prometheus:9090"],
        ["metrics.service.enabled=false", "peering.name="],
    ],
    ids=["defaults", "two-replicas", "no-service-no-peering"],
)
def test_the_api_server_accepts_every_rendered_object_cluster_wide(
    cluster: Cluster, namespace: str, sets: list[str]
) -> None:
    manifests = render(cluster, namespace=namespace, sets=sets)

    done = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifests)

    assert "deployment.apps/" in done.stdout
    assert "clusterrole.rbac.authorization.k8s.io/" in done.stdout


@pytest.mark.usefixtures("peering_crds")
def test_the_api_server_accepts_every_rendered_object_in_namespaced_mode(
    cluster: Cluster, namespace: str
) -> None:
    manifests = render(cluster, namespace=namespace, sets=[f"watchNamespaces={{{namespace}}}"])

    done = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifests)

    assert (
        f"role.rbac.authorization.k8s.io/{release_name(namespace)}-istio-canary-operator"
        in done.stdout
    )
    assert "kopfpeering.kopf.dev/istio-canary-operator" in done.stdout


@pytest.fixture
def installed_namespaced(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The chart applied for real, watching only ``namespace``; returns the operator's user."""
    cluster.kubectl("apply", "--server-side", "-f", str(PEERING_CRDS))
    manifests = render(cluster, namespace=namespace, sets=[f"watchNamespaces={{{namespace}}}"])
    cluster.kubectl("apply", "-f", "-", input=manifests)
    yield f"system:serviceaccount:{namespace}:{release_name(namespace)}-istio-canary-operator"
    # The namespace fixture removes namespaced objects; cluster-scoped ones are ours to delete.
    cluster.kubectl(
        "delete", "--wait=false", "--ignore-not-found", "-f", "-", input=manifests, check=False
    )


def can(cluster: Cluster, user: str, verb: str, resource: str, namespace: str | None) -> bool:
    scope = ["-n", namespace] if namespace else []
    done = cluster.kubectl("auth", "can-i", verb, resource, "--as", user, *scope, check=False)
    return done.stdout.strip() == "yes"


def test_in_namespaced_mode_the_operator_can_do_its_job_in_its_namespace_only(
    cluster: Cluster, namespace: str, installed_namespaced: str
) -> None:
    user = installed_namespaced
    allowed = [
        ("patch", "canaryreleases.releases.istio-canary.io"),
        ("patch", "canaryreleases.releases.istio-canary.io/status"),
        ("create", "deployments.apps"),
        ("delete", "virtualservices.networking.istio.io"),
        ("patch", "destinationrules.networking.istio.io"),
        ("create", "events"),
        ("patch", "kopfpeerings.kopf.dev"),
        # routing.mode Services: one Service per version, and the released one's selector pinned.
        ("create", "services"),
        ("patch", "services"),
        ("watch", "ingresses.networking.k8s.io"),
    ]
    for verb, resource in allowed:
        assert can(cluster, user, verb, resource, namespace), f"cannot {verb} {resource}"

    assert not can(cluster, user, "get", "secrets", namespace)
    assert not can(cluster, user, "patch", "services", "default")
    assert not can(cluster, user, "patch", "ingresses.networking.k8s.io", namespace)
    assert not can(cluster, user, "create", "deployments.apps", "default")
    assert not can(cluster, user, "patch", "clusterkopfpeerings.kopf.dev", None)
    assert can(cluster, user, "watch", "customresourcedefinitions.apiextensions.k8s.io", None)
    assert can(cluster, user, "watch", "namespaces", None), "sidecar injection is read from namespace labels"
    assert not can(cluster, user, "create", "customresourcedefinitions.apiextensions.k8s.io", None)
