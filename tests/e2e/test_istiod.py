"""Istio's own istiod judges what lands in the cluster: its validating webhook runs on every Istio object."""

from __future__ import annotations

import json

from devcluster import Cluster

from tests.e2e.helpers import (
    apply,
    example_release,
    get,
    route_weights,
)
from tests.e2e.releases import ReleaseStarter


def test_istiod_is_up_and_its_webhook_refuses_an_invalid_regex_in_a_hand_written_virtual_service(
    cluster: Cluster, namespace: str
) -> None:
    assert cluster.istiod.is_up()
    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": namespace},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"regex": "(unclosed"}}}],
                    "route": [{"destination": {"host": "reviews"}}],
                }
            ],
        },
    }
    refused = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "validation.istio.io" denied the request' in refused.stderr
    assert "missing closing )" in refused.stderr
    assert get(cluster, "virtualservice", "reviews", namespace) is None

    good = json.loads(json.dumps(bad))
    good["spec"]["http"][0]["match"][0]["headers"]["end-user"]["regex"] = "jason|json"
    apply(cluster, namespace, good)
    assert get(cluster, "virtualservice", "reviews", namespace) is not None


def test_an_operator_write_that_istiod_refuses_ends_failed_with_the_webhook_s_message_and_moves_no_traffic(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter
) -> None:
    ns = namespace
    # RE2 (as Envoy runs it, and as the operator checks it) knows \C; Istio validates regexes
    # with Go's regexp, which does not. istiod wins: the VirtualService is refused.
    rule = {"headers": {"end-user": {"regex": "a\\C+b"}}}
    release = example_release(traffic={"weight": 30, "match": [rule]})
    failed = progressing_release(release, until="Failed").body
    message = failed["status"]["message"]
    assert 'admission webhook "validation.istio.io" denied the request' in message
    assert "invalid escape sequence" in message
    assert message.startswith("the API server refused VirtualService reviews")  # (HTTP 400: a webhook denial)
    # The routes written before the canary was ready (pinning v1) are all that istiod accepted:
    # every request stays on v1, and nothing was written after the refusal.
    vs = get(cluster, "virtualservice", "reviews", ns)
    assert vs is not None and route_weights(vs) == [{"v1": 100}]
    assert failed["status"]["traffic"]["canary"] == 0
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=reviews").stdout
    assert "ApiRefused" in events and "Warning" in events
    # The release stays deletable.
    cluster.kubectl("delete", "canaryrelease", "reviews", "-n", ns, "--timeout=30s")
    assert get(cluster, "canaryrelease", "reviews", ns) is None
