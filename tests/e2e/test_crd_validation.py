"""The API server enforces the generated CRD: valid specs get defaults, bad ones are refused.

No operator runs here: every rejection comes from the schema and CEL rules in ``crds/``, which
is the point (a bad spec never reaches the operator, so it never moves traffic).
"""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any, Protocol

import pytest

pytestmark = pytest.mark.e2e


class Kubectl(Protocol):
    def __call__(
        self,
        *args: str,
        check: bool = ...,
        input: str | None = ...,
    ) -> subprocess.CompletedProcess[str]: ...


class HasKubectl(Protocol):
    kubectl: Kubectl


API_VERSION = "releases.istio-canary.io/v1alpha1"


def release(name: str = "reviews", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "reviews",
        "stable": {"version": "v1"},
        "canary": {"version": "v2", "image": "kubesphere/examples-bookinfo-reviews-v2:1.13.0"},
    }
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "CanaryRelease",
        "metadata": {"name": name},
        "spec": body,
    }


def with_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """A valid release with ``changes`` merged into its spec, one level deep."""
    obj = release()
    for key, value in changes.items():
        current = obj["spec"].get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            obj["spec"][key] = {**current, **value}
        else:
            obj["spec"][key] = value
    return obj


def create(
    cluster: HasKubectl, namespace: str, obj: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)


def get(cluster: HasKubectl, namespace: str, name: str = "reviews") -> dict[str, Any]:
    proc = cluster.kubectl("get", "canaryrelease", name, "-n", namespace, "-o", "json")
    stored: dict[str, Any] = json.loads(proc.stdout)
    return stored


def merge_patch(
    cluster: HasKubectl, namespace: str, patch: dict[str, Any], *extra: str
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "patch",
        "canaryrelease",
        "reviews",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
        *extra,
        check=False,
    )


REJECTED_ON_CREATE = [
    pytest.param(
        {"traffic": {"weight": 101}},
        "spec.traffic.weight: Invalid value: 101",
        id="weight-above-100",
    ),
    pytest.param(
        {"offline": True},
        "offline needs takeOver",
        id="offline-without-take-over",
    ),
    pytest.param(
        {"takeOver": "v3"},
        "takeOver must be empty or name stable.version or canary.version",
        id="take-over-names-an-unknown-version",
    ),
    pytest.param(
        {"canary": {"version": "v1"}},
        "canary.version must differ from stable.version",
        id="canary-version-equals-stable-version",
    ),
    pytest.param(
        {"canary": {"version": "V2_beta"}},
        'spec.canary.version: Invalid value: "V2_beta": spec.canary.version in body should match',
        id="version-is-not-a-dns-label",
    ),
    pytest.param(
        {"service": "Reviews"},
        'spec.service: Invalid value: "Reviews"',
        id="service-is-not-a-dns-label",
    ),
    pytest.param(
        {"traffic": {"match": [{"headers": {"End-User": {"exact": "jason"}}}]}},
        "header names must be lowercase HTTP tokens",
        id="uppercase-header-name",
    ),
    pytest.param(
        {"traffic": {"match": [{}]}},
        "a match rule needs at least one condition",
        id="empty-match-rule",
    ),
    pytest.param(
        {"traffic": {"match": [{"uri": {"exact": "/a", "prefix": "/b"}}]}},
        "set exactly one of exact, prefix or regex",
        id="string-match-with-two-kinds",
    ),
    pytest.param(
        {"canary": {"image": "reviews:v2", "images": {"reviews": "reviews:v2"}}},
        "set image (single-container pods) or images (container name -> image), not both",
        id="both-image-and-images",
    ),
    pytest.param(
        {"traffic": {"mirrorPercent": 150}},
        "spec.traffic.mirrorPercent: Invalid value: 150",
        id="mirror-percent-above-100",
    ),
    pytest.param(
        {"strategy": "Linear"},
        'spec.strategy: Unsupported value: "Linear"',
        id="unknown-strategy",
    ),
    pytest.param(
        {"traffic": {"match": [{"os": ["BeOS"]}]}},
        'Unsupported value: "BeOS"',
        id="unknown-operating-system",
    ),
]


@pytest.mark.parametrize(("changes", "message"), REJECTED_ON_CREATE)
def test_api_server_refuses_an_invalid_spec_with_a_clear_message(
    cluster: HasKubectl, namespace: str, changes: dict[str, Any], message: str
) -> None:
    proc = create(cluster, namespace, with_changes(changes))
    assert proc.returncode != 0, f"accepted an invalid spec: {changes}"
    assert message in proc.stderr, proc.stderr


def test_a_spec_too_large_for_the_operator_is_refused_at_create(
    cluster: HasKubectl, namespace: str
) -> None:
    # The spec of the issue: 32 rules of 16 headers with 500-character regexes, about 270 KB of
    # JSON, more than kubectl apply's copy can hold in 256 KiB of annotations.
    headers = {f"x-header-{i}": {"regex": "a" * 500} for i in range(16)}
    proc = create(cluster, namespace, release(traffic={"match": [{"headers": headers}] * 32}))
    assert proc.returncode != 0, "accepted a spec the operator could never handle"
    assert "spec.traffic.match: Too many: 32: must have at most 16 items" in proc.stderr, proc.stderr
    assert "Too long" in proc.stderr, proc.stderr  # the 500-character regexes, past maxLength 256
    missing = cluster.kubectl("get", "canaryrelease", "reviews", "-n", namespace, check=False)
    assert missing.returncode != 0, "nothing is stored"


def test_a_minimal_spec_is_accepted_and_the_api_server_fills_the_defaults(
    cluster: HasKubectl, namespace: str
) -> None:
    minimal = release()
    minimal["spec"]["canary"] = {"version": "v2"}
    proc = create(cluster, namespace, minimal)
    assert proc.returncode == 0, proc.stderr
    spec = get(cluster, namespace)["spec"]
    assert spec["strategy"] == "Canary"
    assert spec["policy"] == "WaitForWorkloadReady"
    assert spec["versionLabel"] == "version"
    assert spec["traffic"]["weight"] == 0
    assert spec["traffic"]["mirrorPercent"] == 100
    assert (spec["takeOver"], spec["offline"], spec["abort"]) == ("", False, False)
    assert spec["offlineAction"] == "Delete"
    assert "analysis" not in spec


def test_a_full_spec_with_match_rules_and_analysis_is_accepted(
    cluster: HasKubectl, namespace: str
) -> None:
    full = release(
        strategy="Canary",
        traffic={
            "weight": 30,
            "match": [
                {
                    "headers": {"end-user": {"exact": "jason"}, "x-canary": {"regex": "y(es)?"}},
                    "uri": {"prefix": "/api/v2"},
                    "cookie": {"name": "canary", "value": {"exact": "yes"}},
                    "os": ["Windows", "macOS"],
                },
                {"os": ["Linux"]},
            ],
        },
        policy="Immediately",
        analysis={"steps": [10, 20, 50], "promotion": "Offline"},
    )
    proc = create(cluster, namespace, full)
    assert proc.returncode == 0, proc.stderr
    stored = get(cluster, namespace)["spec"]
    assert stored["traffic"]["match"][0]["cookie"]["value"] == {"exact": "yes"}
    assert stored["analysis"]["intervalSeconds"] == 10, "defaults apply inside analysis too"
    assert stored["analysis"]["promotion"] == "Offline"


def test_unknown_spec_fields_are_refused_by_strict_field_validation(
    cluster: HasKubectl, namespace: str
) -> None:
    proc = create(cluster, namespace, with_changes({"wieght": 30}))
    assert proc.returncode != 0
    assert 'unknown field "spec.wieght"' in proc.stderr, proc.stderr


def test_weight_and_take_over_may_change_on_update(cluster: HasKubectl, namespace: str) -> None:
    assert create(cluster, namespace, release()).returncode == 0
    proc = merge_patch(cluster, namespace, {"spec": {"traffic": {"weight": 50}, "takeOver": "v2"}})
    assert proc.returncode == 0, proc.stderr
    assert get(cluster, namespace)["spec"]["traffic"]["weight"] == 50


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param(
            {"stable": {"version": "v0"}}, "stable.version is immutable", id="stable-version"
        ),
        pytest.param(
            {"canary": {"version": "v3"}}, "canary.version is immutable", id="canary-version"
        ),
        pytest.param({"service": "ratings"}, "service is immutable", id="service"),
    ],
)
def test_identity_fields_cannot_change_on_update(
    cluster: HasKubectl, namespace: str, patch: dict[str, Any], message: str
) -> None:
    assert create(cluster, namespace, release()).returncode == 0
    proc = merge_patch(cluster, namespace, {"spec": patch})
    assert proc.returncode != 0, f"accepted a change of {patch}"
    assert message in proc.stderr, proc.stderr


def test_offline_cannot_be_undone(cluster: HasKubectl, namespace: str) -> None:
    assert create(cluster, namespace, release(takeOver="v2", offline=True)).returncode == 0
    proc = merge_patch(cluster, namespace, {"spec": {"offline": False}})
    assert proc.returncode != 0
    assert "offline cannot be undone" in proc.stderr, proc.stderr


def test_status_is_a_subresource_with_a_schema_and_printer_columns(
    cluster: HasKubectl, namespace: str
) -> None:
    assert create(cluster, namespace, release(traffic={"weight": 30})).returncode == 0
    status = {
        "phase": "Progressing",
        "traffic": {"stable": 70, "canary": 30},
        "successRate": 99.5,
        "notInTheSchema": "pruned",
    }
    proc = merge_patch(cluster, namespace, {"status": status}, "--subresource=status")
    assert proc.returncode == 0, proc.stderr
    stored = get(cluster, namespace)
    assert stored["status"]["phase"] == "Progressing"
    assert "notInTheSchema" not in stored["status"], "status must be pruned to its schema"

    # A status written through the main resource is ignored: only the subresource writes it.
    spec_write = merge_patch(cluster, namespace, {"status": {"phase": "Failed"}})
    assert spec_write.returncode == 0, spec_write.stderr
    assert get(cluster, namespace)["status"]["phase"] == "Progressing"

    table = cluster.kubectl("get", "crel", "-n", namespace).stdout.split("\n")
    assert table[0].split() == ["NAME", "STRATEGY", "PHASE", "STABLE", "CANARY", "SUCCESS", "AGE"]
    assert table[1].split()[:6] == ["reviews", "Canary", "Progressing", "70", "30", "99.5"]


def test_an_invalid_status_is_refused(cluster: HasKubectl, namespace: str) -> None:
    assert create(cluster, namespace, release()).returncode == 0
    proc = merge_patch(
        cluster, namespace, {"status": {"phase": "Exploded"}}, "--subresource=status"
    )
    assert proc.returncode != 0
    assert 'Unsupported value: "Exploded"' in proc.stderr, proc.stderr


def test_the_crd_is_listed_under_its_category_and_short_names(
    cluster: HasKubectl, namespace: str
) -> None:
    assert create(cluster, namespace, copy.deepcopy(release())).returncode == 0
    for name in ("istio-canary", "crel", "canary", "canaryreleases.releases.istio-canary.io"):
        proc = cluster.kubectl("get", name, "-n", namespace, "-o", "name", check=False)
        assert proc.stdout.strip() == "canaryrelease.releases.istio-canary.io/reviews", (
            name,
            proc.stderr,
        )
