"""Prometheus as real clusters run it: behind TLS with a private CA, a bearer token and a tenant header.

A proxy on loopback plays the gateway in front of Thanos, Cortex or Mimir: HTTPS with a
certificate from a test CA, and a query reaches the session's real Prometheus only with the
right token and ``X-Scope-OrgID``; anything else gets 401. The operator's own Prometheus takes
its credentials from a mounted directory (read again at every query: a rotated token is used at
once); a release's own ``prometheusUrl`` takes them from a Secret in its namespace.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from devcluster import Cluster, PrometheusServer
from meshsim.simulator import Simulator

from tests.e2e.helpers import apply, deploy_bookinfo, example_release, get, wait_for
from tests.e2e.loopback import Answer, LoopbackServer, Seen
from tests.e2e.releases import ReleaseStarter

pytestmark = pytest.mark.usefixtures("invariant_monitor")

TENANT = "mesh"


class TenantGateway:
    """HTTPS in front of Prometheus: forwards a query with the expected token and tenant, else 401."""

    def __init__(self, prometheus_url: str, ca: trustme.CA) -> None:
        self.token = "first-token-7f3a"
        self.prometheus_url = prometheus_url
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server = LoopbackServer(self._answer, tls=context)

    def _answer(self, seen: Seen) -> Answer:
        if seen.headers.get("authorization") != f"Bearer {self.token}" or seen.headers.get("x-scope-orgid") != TENANT:
            return Answer(401, b"unauthorized")
        with urllib.request.urlopen(self.prometheus_url + seen.path, timeout=5) as upstream:
            return Answer(200, upstream.read(), {"Content-Type": "application/json"})

    def passed(self) -> int:
        """Queries that reached Prometheus."""
        wanted = f"Bearer {self.token}"
        return sum(1 for s in self.server.seen if s.headers.get("authorization") == wanted)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def gateway(prometheus: PrometheusServer, ca: trustme.CA) -> Iterator[TenantGateway]:
    gateway = TenantGateway(prometheus.url, ca)
    with gateway.server:
        yield gateway


def analysed_release(**analysis: Any) -> dict[str, Any]:
    """reviews v1 -> v2 under analysis, a look every 2 s, no rollback during the test."""
    body = example_release("canary-analysis.yaml")
    body["spec"]["analysis"].update(
        {"intervalSeconds": 2, "steps": [20, 50], "minRequests": 20, "unreachableTimeoutSeconds": 3600, **analysis}
    )
    return body


def history(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    status = (get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}
    return list((status.get("analysis") or {}).get("history") or [])


def answered(cluster: Cluster, ns: str, *, after: int = 0) -> bool:
    """Has a look after the first ``after`` had an answer from Prometheus (any verdict but Unreachable)?"""
    return any(c["verdict"] != "Unreachable" for c in history(cluster, ns)[after:])


def test_the_operators_prometheus_behind_tls_a_token_and_a_tenant_header_and_a_rotated_token(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, mesh: Simulator,
    gateway: TenantGateway, ca: trustme.CA, tmp_path: Path,
) -> None:
    ns = namespace
    mounted = tmp_path / "prometheus-credentials"  # a Secret mounted as files
    mounted.mkdir()
    (mounted / "token").write_text(gateway.token + "\n")
    (mounted / "ca.crt").write_text(ca.cert_pem.bytes().decode())
    progressing_release(
        analysed_release(),
        until="Progressing",
        operator_args=(
            "--prometheus-url", gateway.server.url(), "--prometheus-credentials-dir", str(mounted),
            "--prometheus-header", f"X-Scope-OrgID={TENANT}", "--metrics-interval", "2",
        ),
        prepare=lambda: mesh.set_load(namespace=ns, service="reviews", rps=40),
    )
    wait_for(lambda: answered(cluster, ns), timeout=60, what="a look answered through the gateway")
    assert gateway.passed() > 0

    # The token rotates: the gateway takes only the new one, the file holds it at once.
    gateway.token = "second-token-91cd"
    (mounted / "token").write_text(gateway.token + "\n")
    looks = len(history(cluster, ns))
    wait_for(lambda: answered(cluster, ns, after=looks), timeout=60, what="a look with the rotated token")
    assert gateway.passed() > 0

    def measured() -> set[str]:
        versions = ((get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}).get("versions") or []
        return {v["version"] for v in versions if (v.get("metrics") or {}).get("requestRate")}

    # status.versions is read through the same client.
    wait_for(lambda: measured() == {"v1", "v2"}, timeout=30, what="both versions' request rates")


def test_a_release_prometheus_with_a_ca_and_token_from_a_secret_and_clear_words_for_a_wrong_token(
    cluster: Cluster, namespace: str, start_operator: Any, mesh: Simulator, gateway: TenantGateway, ca: trustme.CA,
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    mesh.set_load(namespace=ns, service="reviews", rps=40)
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-prometheus"},
        "stringData": {"token": gateway.token, "ca.crt": ca.cert_pem.bytes().decode()},
    }
    apply(cluster, ns, secret)
    operator = start_operator("--allow-release-prometheus-urls", "--allowed-url-prefix", gateway.server.url("/"))
    auth = {"secretRef": {"name": "team-prometheus"}, "headers": {"X-Scope-OrgID": TENANT}}
    apply(cluster, ns, analysed_release(prometheusUrl=gateway.server.url(), prometheusAuth=auth))
    wait_for(lambda: answered(cluster, ns), timeout=90, what="a look answered through the gateway")

    # The gateway stops taking this token: the looks say so in fixed words, and hold the weight.
    gateway.token = "revoked-and-replaced"
    looks = len(history(cluster, ns))
    said = f"Prometheus at {gateway.server.url()} answered HTTP 401"
    wait_for(lambda: any(c["reason"] == said for c in history(cluster, ns)[looks:]), timeout=60, what="a 401")
    release = get(cluster, "canaryrelease", "reviews", ns) or {}
    assert said in release["status"]["message"]
    assert release["status"]["analysis"]["step"] == history(cluster, ns)[looks]["step"]

    # Without the CA the certificate is not trusted: a TLS failure, in words that say what to do.
    cluster.kubectl("delete", "secret", "team-prometheus", "-n", ns)
    apply(cluster, ns, {**secret, "stringData": {"token": gateway.token}})
    looks = len(history(cluster, ns))
    tls = f"Prometheus at {gateway.server.url()} did not answer: the TLS handshake failed"
    wait_for(lambda: any(c["reason"].startswith(tls) for c in history(cluster, ns)[looks:]), timeout=60, what="TLS")
    shown = json.dumps(get(cluster, "canaryrelease", "reviews", ns)) + operator.logs()
    assert gateway.token not in shown and "first-token-7f3a" not in shown
