"""Bad request-content and mirroring input: refused with a clear message, and traffic stays put.

What the CRD schema can check (an empty rule, mirrorPercent out of range) the API server refuses
at apply. What it cannot (RE2 syntax, the protocol of the Service's port) the operator reports:
phase Failed, SpecValid=False with the field path, a Warning Event, and no write at all.
"""

from __future__ import annotations

import json
from typing import Any

from devcluster import Cluster

from tests.e2e.helpers import (
    apply,
    assert_routing_invariants,
    example_release,
    get,
    patch_spec,
    release_phase,
    route_weights,
    versioned_deployment,
    wait_for,
)
from tests.e2e.releases import ReleaseStarter


def _routing(cluster: Cluster, ns: str, name: str = "reviews") -> dict[str, Any]:
    """The specs of the stored VirtualService and DestinationRule (what Envoy would route by)."""
    vs = get(cluster, "virtualservice", name, ns)
    dr = get(cluster, "destinationrule", name, ns)
    return {"vs": (vs or {}).get("spec"), "dr": (dr or {}).get("spec")}


def _spec_valid(cluster: Cluster, ns: str, name: str = "reviews") -> dict[str, Any]:
    obj = get(cluster, "canaryrelease", name, ns) or {}
    conditions = obj.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "SpecValid"), {})


def _warnings(cluster: Cluster, ns: str, name: str = "reviews") -> list[str]:
    selector = f"involvedObject.kind=CanaryRelease,involvedObject.name={name},type=Warning"
    proc = cluster.kubectl("get", "events", "-n", ns, "-o", "json", "--field-selector", selector)
    events = json.loads(proc.stdout)["items"]
    return [str(e.get("message", "")) for e in events]


def _progressing_at_30(progressing_release: ReleaseStarter) -> dict[str, Any]:
    cluster, ns = progressing_release.cluster, progressing_release.namespace
    operator = progressing_release().operator
    wait_for(lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {}) == [{"v1": 70, "v2": 30}],
             what="70/30")  # fmt: skip
    return {"operator": operator, "routing": _routing(cluster, ns)}


def test_regex_that_re2_rejects_fails_the_release_with_the_field_path_and_moves_no_traffic(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    before = _progressing_at_30(progressing_release)
    # Lookahead is valid in Python and PCRE but not in RE2, which Envoy runs.
    bad = [{"headers": {"end-user": {"regex": "(?=jason)\\w+"}}}]
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 60, "match": bad}})

    obj = wait_for(lambda: release_phase(cluster, ns, "reviews", "Failed"), what="Failed")
    assert "traffic.match[0].headers.end-user.regex" in obj["status"]["message"]
    condition = _spec_valid(cluster, ns)
    assert condition["status"] == "False" and "traffic.match[0].headers.end-user.regex" in condition["message"]
    wait_for(lambda: any("traffic.match[0].headers.end-user.regex" in m for m in _warnings(cluster, ns)),
             what="a Warning Event naming the field")  # fmt: skip
    # Neither the new weight nor the rule reached Envoy: the routing is exactly what it was.
    assert _routing(cluster, ns) == before["routing"]
    assert before["operator"].proc.poll() is None  # reported, not crash-looping

    # Fixed: the release proceeds with the new weight and the rule.
    good = [{"headers": {"end-user": {"regex": "jason|bob"}}}]
    patch_spec(cluster, ns, "reviews", {"traffic": {"weight": 60, "match": good}})
    wait_for(lambda: release_phase(cluster, ns, "reviews", "Progressing"), what="Progressing again")
    wait_for(
        lambda: route_weights(get(cluster, "virtualservice", "reviews", ns) or {})
        == [{"v2": 100}, {"v1": 40, "v2": 60}],
        what="rule and 40/60",
    )
    wait_for(lambda: _spec_valid(cluster, ns).get("status") == "True", what="SpecValid=True")
    assert_routing_invariants(cluster, ns, "reviews")


def test_empty_rule_and_mirror_percent_out_of_range_are_refused_at_apply(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    before = _progressing_at_30(progressing_release)

    refused: dict[str, dict[str, Any]] = {
        "spec.traffic.match[0]: Invalid value: \"object\": a match rule needs at least one condition": {
            "traffic": {"weight": 30, "match": [{}]}
        },
        "spec.traffic.mirrorPercent in body should be less than or equal to 100": {
            "strategy": "Mirror",
            "traffic": {"mirrorPercent": 150},
        },
        "header names must be lowercase": {"traffic": {"match": [{"headers": {"End-User": {"exact": "a"}}}]}},
    }
    for message, spec in refused.items():
        body = example_release(**spec)
        proc = cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body), check=False)
        assert proc.returncode != 0, spec
        assert message in proc.stderr, proc.stderr
    proc = cluster.kubectl(
        "patch", "canaryrelease", "reviews", "-n", ns, "--type=merge",
        "-p", json.dumps({"spec": {"traffic": {"match": [{"headers": {}}]}}}), check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "a match rule needs at least one condition" in proc.stderr, proc.stderr
    mirror_150 = cluster.kubectl(
        "patch", "canaryrelease", "reviews", "-n", ns, "--type=merge",
        "-p", json.dumps({"spec": {"traffic": {"mirrorPercent": 150}}}), check=False,
    )  # fmt: skip
    assert mirror_150.returncode != 0 and "less than or equal to 100" in mirror_150.stderr, mirror_150.stderr

    assert release_phase(cluster, ns, "reviews", "Progressing") is not None
    assert _routing(cluster, ns) == before["routing"]


DB_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "db"},
    "spec": {"selector": {"app": "db"}, "ports": [{"name": "tcp-db", "port": 5432}]},
}
DB_V1 = versioned_deployment("db", "v1", image="example.invalid/db:1")


def test_match_rule_on_a_tcp_only_port_is_reported_and_nothing_is_written(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    for manifest in (DB_SERVICE, DB_V1):
        apply(cluster, ns, manifest)
    cluster.kubectl("wait", "-n", ns, "--for=condition=Available", "--timeout=90s", "deployment/db-v1")
    operator = start_operator()
    release: dict[str, Any] = {
        "apiVersion": "releases.istio-canary.io/v1alpha1",
        "kind": "CanaryRelease",
        "metadata": {"name": "db"},
        "spec": {
            "service": "db",
            "stable": {"version": "v1"},
            "canary": {"version": "v2", "image": "example.invalid/db:2"},
            "traffic": {"weight": 30, "match": [{"headers": {"end-user": {"exact": "jason"}}}]},
        },
    }
    apply(cluster, ns, release)

    obj = wait_for(lambda: release_phase(cluster, ns, "db", "Failed"), what="Failed")
    message = obj["status"]["message"]
    assert message.startswith("traffic.match:") and "5432 (tcp-db)" in message and "opaque TCP" in message
    assert _spec_valid(cluster, ns, "db")["status"] == "False"
    wait_for(lambda: any("5432 (tcp-db)" in m for m in _warnings(cluster, ns, "db")), what="a Warning Event")
    assert _routing(cluster, ns, "db") == {"vs": None, "dr": None}
    assert get(cluster, "deployment", "db-v2", ns) is None
    assert operator.proc.poll() is None

    # Without the rule, the TCP port is split by weight.
    patch_spec(cluster, ns, "db", {"traffic": {"weight": 30, "match": []}})
    wait_for(lambda: release_phase(cluster, ns, "db", "Progressing"), timeout=90, what="Progressing")
    vs: dict[str, Any] = wait_for(lambda: get(cluster, "virtualservice", "db", ns), what="the VS")
    wait_for(lambda: route_weights(get(cluster, "virtualservice", "db", ns) or {}) == [{"v1": 70, "v2": 30}],
             what="tcp 70/30")  # fmt: skip
    assert "http" not in vs["spec"]
    assert_routing_invariants(cluster, ns, "db")
