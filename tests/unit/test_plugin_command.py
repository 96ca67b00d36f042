"""kubectl-canary end to end against a fake cluster: what is sent, printed and returned."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from istio_canary.plugin import command
from istio_canary.plugin.command import Target, main
from istio_canary.plugin.patches import Body, Patch
from kubernetes.client.exceptions import ApiException

RELEASE = {
    "metadata": {"name": "reviews", "namespace": "bookinfo", "uid": "u-1"},
    "spec": {"service": "reviews", "stable": {"version": "v1"}, "canary": {"version": "v2"}},
    "status": {"phase": "Progressing", "traffic": {"stable": 100, "canary": 0}},
}


class FakeCluster:
    """Stands in for the API server; records every patch."""

    instances: ClassVar[list[FakeCluster]] = []
    reject_with: ClassVar[ApiException | None] = None

    def __init__(self, target: Target) -> None:
        self.target = target
        self.namespace = target.namespace or "default"
        self.patches: list[tuple[str, Patch]] = []
        FakeCluster.instances.append(self)

    def get(self, name: str) -> Body:
        return RELEASE

    def list_releases(self, *, all_namespaces: bool) -> list[Body]:
        return [RELEASE]

    def patch(self, name: str, patch: Patch) -> Body:
        if FakeCluster.reject_with is not None:
            command._call(lambda: _raise(FakeCluster.reject_with))
        self.patches.append((name, patch))
        return RELEASE

    def events(self, release: Body) -> list[Body]:
        return []


def _raise(error: Exception | None) -> Any:
    assert error is not None
    raise error


@pytest.fixture(autouse=True)
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCluster.instances = []
    FakeCluster.reject_with = None
    monkeypatch.setattr(command, "_Cluster", FakeCluster)


def sent() -> list[tuple[str, Patch]]:
    return [p for cluster in FakeCluster.instances for p in cluster.patches]


def test_set_weight_sends_one_merge_patch_and_confirms_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["set-weight", "reviews", "30", "-n", "bookinfo"]) == 0

    assert sent() == [("reviews", {"spec": {"traffic": {"weight": 30}}})]
    assert FakeCluster.instances[0].target.namespace == "bookinfo"
    out = capsys.readouterr().out
    assert (
        out.strip() == "canaryrelease.releases.istio-canary.io/reviews patched (traffic.weight=30)"
    )


def test_a_locally_invalid_request_prints_one_line_exits_1_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["take-over", "reviews", "v9"]) == 1

    assert sent() == []
    err = capsys.readouterr().err
    assert err.startswith("error: version 'v9' is neither stable") and err.count("\n") == 1


def test_a_422_from_the_api_server_prints_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    rejection = ApiException(status=422, reason="Unprocessable Entity")
    rejection.body = json.dumps(
        {
            "kind": "Status",
            "message": 'CanaryRelease.releases.istio-canary.io "reviews" is invalid: '
            "spec: Invalid value: offline cannot be undone",
            "code": 422,
        }
    )
    FakeCluster.reject_with = rejection

    assert main(["abort", "reviews"]) == 1

    err = capsys.readouterr().err
    assert err == (
        'error: CanaryRelease.releases.istio-canary.io "reviews" is invalid: '
        "spec: Invalid value: offline cannot be undone (HTTP 422)\n"
    )


def test_an_error_without_a_status_body_falls_back_to_the_reason() -> None:
    assert command._api_message(503, "not json", "Service Unavailable") == (
        "Service Unavailable (HTTP 503)"
    )


@pytest.mark.parametrize(
    ("argv", "patch"),
    [
        (["pause", "reviews"], {"spec": {"policy": "Paused"}}),
        (["resume", "reviews"], {"spec": {"policy": "WaitForWorkloadReady"}}),
        (["abort", "reviews"], {"spec": {"abort": True}}),
        (["take-over", "reviews", "v2"], {"spec": {"takeOver": "v2"}}),
    ],
)
def test_each_verb_patches_its_spec_field(argv: list[str], patch: Patch) -> None:
    assert main(argv) == 0

    assert sent() == [("reviews", patch)]


def test_offline_before_take_over_is_refused_locally(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["offline", "reviews"]) == 1

    assert sent() == []
    assert "take over first" in capsys.readouterr().err


def test_kubeconfig_and_context_flags_reach_the_cluster_connection() -> None:
    assert main(["--kubeconfig", "/tmp/kc", "get", "--context", "dev"]) == 0

    assert FakeCluster.instances[0].target == Target(
        kubeconfig="/tmp/kc", context="dev", namespace=None
    )


def test_get_prints_a_table_of_releases(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get"]) == 0

    out = capsys.readouterr().out
    assert "PHASE" in out and "Progressing" in out and "v1 100%" in out


def test_status_prints_the_release_once_without_watch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "reviews"]) == 0

    assert "bookinfo/reviews" in capsys.readouterr().out
