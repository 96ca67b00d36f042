"""The local control plane behaves like a real cluster: scheduling, readiness, schemas, RBAC."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

from devcluster import Cluster, PrometheusServer
from devcluster.prometheus import free_port
from prometheus_client import CollectorRegistry, Counter, start_http_server


def _deployment(name: str, replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
                },
            },
        }
    )


def test_deployment_pods_are_scheduled_on_the_fake_node_and_become_available(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("web", 2))
    deadline = time.monotonic() + 90
    available = 0
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "deployment", "web", "-n", namespace, "-o", "json").stdout
        available = json.loads(out).get("status", {}).get("availableReplicas", 0)
        if available == 2:
            break
        time.sleep(0.5)
    assert available == 2
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-node-0"}
    assert all(p["status"]["phase"] == "Running" for p in pods)


VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews"},
    "spec": {
        "hosts": ["reviews"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 70},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 30},
                ]
            }
        ],
    },
}


def test_api_server_accepts_a_valid_virtual_service(cluster: Cluster, namespace: str) -> None:
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(VIRTUAL_SERVICE))
    assert "virtualservice.networking.istio.io/reviews created" in proc.stdout


def test_api_server_rejects_a_virtual_service_that_breaks_istios_schema(cluster: Cluster, namespace: str) -> None:
    bad = json.loads(json.dumps(VIRTUAL_SERVICE))
    bad["spec"]["http"][0]["route"][0]["weight"] = "seventy"
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert 'spec.http[0].route[0].weight: Invalid value: "string"' in proc.stderr


def test_api_server_enforces_istios_one_of_rules(cluster: Cluster, namespace: str) -> None:
    bad = json.loads(json.dumps(VIRTUAL_SERVICE))
    # A StringMatch sets exactly one of exact, prefix, regex (oneOf in Istio's schema).
    bad["spec"]["http"][0]["match"] = [{"headers": {"end-user": {"exact": "a", "prefix": "b"}}}]
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert '"spec.http[0].match[0].headers.end-user" must validate one and only one schema (oneOf)' in proc.stderr


def test_api_server_enforces_istios_cel_rules(cluster: Cluster, namespace: str) -> None:
    bad = json.loads(json.dumps(VIRTUAL_SERVICE))
    bad["spec"]["http"][0]["timeout"] = "0s"  # CEL: duration(self) >= duration('1ms')
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "spec.http[0].timeout: Invalid value" in proc.stderr
    assert "must be a valid duration greater than 1ms" in proc.stderr


def test_rbac_keeps_a_service_account_out_of_other_namespaces_secrets(cluster: Cluster, namespace: str) -> None:
    other = f"{namespace}-other"[:63]
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.kubectl("create", "secret", "generic", "top", "-n", other, "--from-literal=k=v")
        cluster.kubectl("create", "secret", "generic", "mine", "-n", namespace, "--from-literal=k=v")
        cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
        cluster.kubectl("create", "role", "secret-reader", "-n", namespace, "--verb=get,list", "--resource=secrets")
        cluster.kubectl(
            "create", "rolebinding", "reader", "-n", namespace,
            "--role=secret-reader", f"--serviceaccount={namespace}:reader",
        )
        token = cluster.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
        server = json.loads(cluster.kubectl("config", "view", "--minify", "-o", "json").stdout)["clusters"][0][
            "cluster"
        ]["server"]

        def get_secret(ns: str, name: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(  # noqa: PLW1510 - callers check returncode
                [
                    str(cluster.bin_dir / "kubectl"), "--kubeconfig=/dev/null", f"--server={server}",
                    f"--token={token}", "--insecure-skip-tls-verify", "get", "secret", name, "-n", ns,
                ],
                text=True,
                capture_output=True,
            )

        allowed = get_secret(namespace, "mine")
        assert allowed.returncode == 0, allowed.stderr
        denied = get_secret(other, "top")
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()
        assert f'cannot get resource "secrets" in API group "" in the namespace "{other}"' in denied.stderr
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_prometheus_answers_queries_and_scrapes_a_target_the_test_starts(prometheus: PrometheusServer) -> None:
    registry = CollectorRegistry()
    counter = Counter("controlplane_probe_total", "A counter only this test increments.", registry=registry)
    port = free_port()
    start_http_server(port, addr="127.0.0.1", registry=registry)
    counter.inc(41)
    prometheus.add_scrape_target("probe", f"127.0.0.1:{port}")
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?query=up", timeout=5) as resp:
        assert json.load(resp)["status"] == "success"
    deadline = time.monotonic() + 30
    values: list[float] = []
    while time.monotonic() < deadline and not values:
        values = [float(r["value"][1]) for r in prometheus.query('controlplane_probe_total{job="probe"}')]
        time.sleep(0.5)
    prometheus.remove_scrape_target("probe")
    assert values == [41.0]
