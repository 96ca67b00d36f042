"""kubectl-canary against the local control plane: each verb patches the stored spec, and the
API server's refusals come back as one line. The operator does not need to run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devcluster import Cluster
from istio_canary.plugin import command, main
from istio_canary.plugin.command import Target
from istio_canary.plugin.patches import PluginError

pytestmark = pytest.mark.e2e


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> str:
    body = {
        "apiVersion": "releases.istio-canary.io/v1alpha1",
        "kind": "CanaryRelease",
        "metadata": {"name": "reviews", "namespace": namespace},
        "spec": {
            "service": "reviews",
            "stable": {"version": "v1"},
            "canary": {"version": "v2", "image": "example.invalid/reviews:2"},
            "traffic": {"weight": 0},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    return "reviews"


def stored_spec(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    done = cluster.kubectl("get", "canaryrelease", name, "-n", namespace, "-o", "json")
    spec: dict[str, Any] = json.loads(done.stdout)["spec"]
    return spec


def canary(cluster: Cluster, namespace: str, *argv: str) -> int:
    return main([*argv, "-n", namespace, "--kubeconfig", cluster.kubeconfig])


def test_each_verb_patches_the_stored_spec(cluster: Cluster, namespace: str, release: str) -> None:
    assert canary(cluster, namespace, "set-weight", release, "30") == 0
    assert stored_spec(cluster, namespace, release)["traffic"]["weight"] == 30

    assert canary(cluster, namespace, "pause", release) == 0
    assert stored_spec(cluster, namespace, release)["policy"] == "Paused"
    assert canary(cluster, namespace, "resume", release) == 0
    assert stored_spec(cluster, namespace, release)["policy"] == "WaitForWorkloadReady"

    assert canary(cluster, namespace, "take-over", release, "v2") == 0
    assert canary(cluster, namespace, "offline", release) == 0
    spec = stored_spec(cluster, namespace, release)
    assert spec["takeOver"] == "v2" and spec["offline"] is True
    # Nothing else in the spec was touched.
    assert (spec["canary"]["version"], spec["canary"]["image"]) == (
        "v2",
        "example.invalid/reviews:2",
    )


def test_abort_patches_the_stored_spec(cluster: Cluster, namespace: str, release: str) -> None:
    assert canary(cluster, namespace, "abort", release) == 0

    assert stored_spec(cluster, namespace, release)["abort"] is True


def test_get_and_status_show_the_release(
    cluster: Cluster, namespace: str, release: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert canary(cluster, namespace, "get") == 0
    assert canary(cluster, namespace, "status", release) == 0

    out = capsys.readouterr().out
    assert "reviews" in out and "Canary" in out and f"{namespace}/reviews" in out


def test_a_rejection_by_the_api_server_carries_its_message(
    cluster: Cluster, namespace: str, release: str
) -> None:
    api = command._Cluster(Target(kubeconfig=cluster.kubeconfig, context=None, namespace=namespace))

    with pytest.raises(PluginError, match=r"HTTP 422") as refused:
        api.patch(release, {"spec": {"traffic": {"weight": 150}}})

    assert "weight" in str(refused.value)
    assert stored_spec(cluster, namespace, release)["traffic"]["weight"] == 0


def test_a_missing_release_is_one_line_and_exit_code_1(
    cluster: Cluster, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert canary(cluster, namespace, "take-over", "nope", "v2") == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and "HTTP 404" in err
