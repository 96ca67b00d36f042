"""Issue 20: a CanaryRelease cannot turn the operator against the cluster.

Someone who may write CanaryReleases in one namespace aims ``analysis.prometheusUrl`` at an
internal endpoint whose answer holds a token (a local HTTP server here, on loopback). By default
the operator refuses the release before it makes any request; with the host allowed it calls it,
and the token still reaches neither status, Events, the operator's log nor its metrics. A name
that resolves to a link-local address is refused; a ``prometheusAuth`` token goes to Prometheus
only, and the chart lets the operator get only the named Secret; the aggregated roles give
``view`` read and ``edit`` write; the chart's pod passes the API server's restricted Pod
Security admission.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster import Cluster

from tests.e2e.helpers import (
    apply,
    deploy_bookinfo,
    example_release,
    get,
    patch_spec,
    release_phase,
    wait_for,
)
from tests.e2e.loopback import Answer, LoopbackServer, free_port
from tests.e2e.releases import ReleaseStarter

pytestmark = pytest.mark.e2e

CHART = Path(__file__).resolve().parents[2] / "charts" / "istio-canary-operator"
SECRET = "s3cr3t-admin-token-9b2e"
NO_FRAGMENT = "prometheusUrl must have no query and no fragment"


@pytest.fixture
def admin_endpoint() -> Iterator[LoopbackServer]:
    """Answers in turn a 403 page, a 200 that is no query result and a 500: each holds the token."""
    answers = [
        Answer(403, f"<h1>Forbidden</h1> Authorization: Bearer {SECRET}".encode(), {"X-Admin-Token": SECRET}),
        Answer(200, f"admin_token={SECRET}\n".encode()),
        Answer(500, json.dumps({"status": "error", "error": SECRET}).encode()),
    ]
    # The server records a request before it answers: the first gets answers[0].
    with LoopbackServer(lambda _: answers[(len(server.seen) - 1) % len(answers)]) as server:
        yield server


def analysed_release(prometheus_url: str) -> dict[str, Any]:
    """reviews v1 -> v2 under analysis: a look every second, and no rollback during the test."""
    body = example_release("canary-analysis.yaml")
    body["spec"]["analysis"].update(
        {"intervalSeconds": 1, "steps": [20], "unreachableTimeoutSeconds": 3600, "prometheusUrl": prometheus_url}
    )
    return body


def history(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    status = (get(cluster, "canaryrelease", "reviews", ns) or {}).get("status") or {}
    return list((status.get("analysis") or {}).get("history") or [])


def events(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    return list(json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"])


def test_a_release_aiming_prometheus_url_at_an_internal_endpoint_fails_before_any_request(
    cluster: Cluster, namespace: str, progressing_release: ReleaseStarter, admin_endpoint: LoopbackServer
) -> None:
    ns = namespace
    # The operator's default policy: no per-release URLs.
    release = analysed_release(admin_endpoint.url("/internal/admin"))
    failed = progressing_release(release, until="Failed").body
    message = failed["status"]["message"]
    assert "is refused by the operator's outbound policy" in message
    assert "queries only its own Prometheus" in message
    # Nothing was changed: no canary, no routing; and after a retry still no request.
    assert get(cluster, "deployment", "reviews-v2", ns) is None
    assert get(cluster, "virtualservice", "reviews", ns) is None
    wait_for(lambda: [e for e in events(cluster, ns) if e["reason"] == "OutboundRefused"], timeout=30, what="Event")
    assert admin_endpoint.seen == []


def test_the_api_server_refuses_a_prometheus_url_with_a_fragment_a_query_a_user_or_another_scheme(
    cluster: Cluster, namespace: str
) -> None:
    refused = {
        "http://127.0.0.1:8080/internal/admin#": NO_FRAGMENT,
        "http://127.0.0.1:8080/internal/admin?x=": NO_FRAGMENT,
        "http://admin:hunter2@prometheus:9090": "must not carry a user name or password",
        "file:///var/run/secrets/kubernetes.io/serviceaccount/token": "must be an http or https URL",
        "http://prometheus/a/../admin": "no . or .. path segments",
        "prometheus:9090": "must be an http or https URL",
    }
    for url, message in refused.items():
        body = json.dumps(analysed_release(url))
        done = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=body, check=False)
        assert done.returncode != 0 and message in done.stderr, (url, done.stderr)

    accepted = json.dumps(analysed_release("https://prometheus.team-a.example:9090/prom"))
    cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=accepted)


def test_with_the_host_allowed_the_answer_holding_a_token_never_reaches_status_events_log_or_metrics(
    cluster: Cluster, namespace: str, start_operator: Any, admin_endpoint: LoopbackServer
) -> None:
    ns = namespace
    deploy_bookinfo(cluster, ns)
    metrics_port = free_port()
    operator = start_operator(
        "--allow-release-prometheus-urls", "--allowed-url-prefix", admin_endpoint.url("/internal/"),
        "--metrics-port", str(metrics_port), "--verbose",
    )
    apply(cluster, ns, analysed_release(admin_endpoint.url("/internal/admin")))

    said = f"Prometheus at {admin_endpoint.url('/internal/admin')} "
    reasons = {
        said + "answered HTTP 403",
        said + "answered something that is not a Prometheus query result",
        said + "answered HTTP 500",
    }
    wait_for(
        lambda: reasons <= {c["reason"] for c in history(cluster, ns)},
        timeout=120,
        what="a look that got each of the three answers",
    )

    assert len(admin_endpoint.seen) >= 3
    assert all(s.path.startswith("/internal/admin/api/v1/query?") for s in admin_endpoint.seen)
    release = cluster.kubectl("get", "canaryrelease", "reviews", "-n", ns, "-o", "json").stdout
    assert SECRET not in release
    assert SECRET not in json.dumps(events(cluster, ns))
    assert SECRET not in operator.logs()
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        assert SECRET not in page.read().decode()
    assert {c["verdict"] for c in history(cluster, ns)} == {"Unreachable"}


def test_a_name_that_resolves_to_a_link_local_address_is_refused(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    with LoopbackServer(lambda _: Answer(403, SECRET.encode())) as team_prometheus:
        port = team_prometheus.port
        deploy_bookinfo(cluster, ns)
        # Fixed resolver answers stand in for DNS: one name leads to loopback, the other to the
        # metadata address. The policy allows both names: only the address check can refuse.
        start_operator(
            "--allow-release-prometheus-urls",
            "--allowed-url-prefix", f"http://prometheus.team-a.test:{port}/",
            "--allowed-url-prefix", f"http://metadata.attacker.test:{port}/",
            env={"ISTIO_CANARY_RESOLVE": "prometheus.team-a.test=127.0.0.1,metadata.attacker.test=169.254.169.254"},
        )
        apply(cluster, ns, analysed_release(f"http://prometheus.team-a.test:{port}/prom"))
        wait_for(
            lambda: any(c["reason"].endswith("answered HTTP 403") for c in history(cluster, ns)),
            timeout=90,
            what="a look at the allowed name",
        )
        # The connection went to the address the name resolved to, the Host header names the name.
        assert {s.headers["host"] for s in team_prometheus.seen} == {f"prometheus.team-a.test:{port}"}

        patch_spec(cluster, ns, "reviews", {"analysis": {"prometheusUrl": f"http://metadata.attacker.test:{port}/latest"}})
        failed = wait_for(lambda: release_phase(cluster, ns, "reviews", "Failed"), timeout=60, what="Failed")

    assert failed["status"]["message"].startswith(
        "metadata.attacker.test resolves to 169.254.169.254, a link-local address"
    )
    assert any(e["reason"] == "OutboundRefused" for e in events(cluster, ns))


def test_a_token_from_a_secret_in_the_release_namespace_is_sent_to_prometheus_and_shown_nowhere(
    cluster: Cluster, namespace: str, start_operator: Any
) -> None:
    ns = namespace
    empty = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
    with LoopbackServer(lambda _: Answer(200, empty, {"Content-Type": "application/json"})) as team_prometheus:
        deploy_bookinfo(cluster, ns)
        cluster.kubectl("create", "secret", "generic", "prometheus-auth", f"--from-literal=token={SECRET}", "-n", ns)
        operator = start_operator(
            "--allow-release-prometheus-urls", "--allowed-url-prefix", team_prometheus.url("/"), "--verbose"
        )
        body = analysed_release(team_prometheus.url("/"))
        body["spec"]["analysis"]["prometheusAuth"] = {"secretRef": {"name": "prometheus-auth"}}
        apply(cluster, ns, body)

        wait_for(lambda: any(c["verdict"] == "NoData" for c in history(cluster, ns)), timeout=90, what="a look")
        assert {s.headers.get("authorization") for s in team_prometheus.seen} == {f"Bearer {SECRET}"}

        # The Secret is read at every look: without it, the release cannot go on.
        cluster.kubectl("delete", "secret", "prometheus-auth", "-n", ns)
        failed = wait_for(lambda: release_phase(cluster, ns, "reviews", "Failed"), timeout=60, what="Failed")

    assert failed["status"]["message"] == (
        f"Secret prometheus-auth in namespace {ns} (analysis.prometheusAuth) does not exist"
    )
    assert SECRET not in cluster.kubectl("get", "canaryrelease", "reviews", "-n", ns, "-o", "json").stdout
    assert SECRET not in json.dumps(events(cluster, ns))
    assert SECRET not in operator.logs()


def test_the_chart_lets_the_operator_get_only_the_named_secrets_of_its_namespaces(
    cluster: Cluster, namespace: str
) -> None:
    release = f"sec-{namespace[-5:]}"
    sets = (
        f"watchNamespaces={{{namespace}}}", "outbound.allowReleasePrometheusUrls=true",
        "rbac.secretNames={prometheus-auth}",
    )
    objects = "".join(
        helm_template(cluster, release=release, namespace=namespace, show_only=f"templates/{t}.yaml", sets=sets)
        for t in ("serviceaccount", "rbac")
    )
    cluster.kubectl("apply", "-f", "-", input=objects)
    try:
        operator = f"system:serviceaccount:{namespace}:{release}-istio-canary-operator"

        def can(*what: str, where: str = namespace) -> bool:
            done = cluster.kubectl("auth", "can-i", *what, "--as", operator, "-n", where, check=False)
            return done.stdout.strip() == "yes"

        assert wait_for(lambda: can("get", "secret/prometheus-auth"), timeout=30, what="the Role")
        assert not can("get", "secret/another-secret")
        assert not can("list", "secrets") and not can("watch", "secrets")
        assert not can("get", "secret/prometheus-auth", where="default")
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=objects, check=False)


# -- roles for people ---------------------------------------------------------------------------


def helm_template(cluster: Cluster, *, release: str, namespace: str, show_only: str, sets: tuple[str, ...] = ()) -> str:
    helm = cluster.bin_dir / "helm"
    if not helm.exists():
        pytest.skip(".bin/helm is missing: build it with hack/build-controlplane.sh")
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    args = [str(helm), "template", release, str(CHART), "--namespace", namespace, "--kube-version", version]
    args += ["--show-only", show_only, *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def user_roles(cluster: Cluster, namespace: str) -> Iterator[None]:
    """The chart's aggregated ClusterRoles (cluster-scoped: named after the test, deleted after it)."""
    roles = helm_template(
        cluster, release=f"sec-{namespace[-5:]}", namespace=namespace, show_only="templates/user-roles.yaml"
    )
    cluster.kubectl("apply", "-f", "-", input=roles)
    yield
    cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=roles, check=False)


def as_account(cluster: Cluster, namespace: str, account: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(*args, "-n", namespace, f"--as=system:serviceaccount:{namespace}:{account}", check=False)


@pytest.mark.usefixtures("user_roles")
def test_a_service_account_with_view_cannot_patch_a_release_and_one_with_edit_can(
    cluster: Cluster, namespace: str
) -> None:
    ns = namespace
    for account, role in (("viewer", "view"), ("editor", "edit")):
        cluster.kubectl("create", "serviceaccount", account, "-n", ns)
        cluster.kubectl(
            "create", "rolebinding", account, f"--clusterrole={role}", f"--serviceaccount={ns}:{account}", "-n", ns
        )
    apply(cluster, ns, example_release())  # no operator runs: the release is only an object here

    def can(account: str, verb: str, resource: str = "canaryreleases.releases.istio-canary.io") -> bool:
        return as_account(cluster, ns, account, "auth", "can-i", verb, resource).stdout.strip() == "yes"

    # The aggregation controller adds the rules to view and edit within moments.
    wait_for(lambda: can("viewer", "get") and can("editor", "patch"), timeout=60, what="aggregated rules")

    patch = ["patch", "canaryrelease", "reviews", "--type=merge", "-p", '{"spec": {"traffic": {"weight": 50}}}']
    refused = as_account(cluster, ns, "viewer", *patch)
    assert refused.returncode != 0 and "Forbidden" in refused.stderr
    assert as_account(cluster, ns, "viewer", "get", "canaryrelease", "reviews").returncode == 0
    assert not can("viewer", "delete") and not can("viewer", "create")

    assert as_account(cluster, ns, "editor", *patch).returncode == 0
    assert (get(cluster, "canaryrelease", "reviews", ns) or {})["spec"]["traffic"]["weight"] == 50
    # Status is the operator's: not even edit writes it.
    status = as_account(
        cluster, ns, "editor", *patch[:-2], "--subresource=status", "-p", '{"status": {"phase": "Completed"}}'
    )
    assert status.returncode != 0 and "Forbidden" in status.stderr


# -- the operator's own pod ---------------------------------------------------------------------


def test_the_chart_pod_is_admitted_by_the_restricted_pod_security_standard(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")

    def pod_of(*sets: str) -> str:
        rendered = helm_template(
            cluster, release="ico", namespace=namespace, show_only="templates/deployment.yaml", sets=sets
        )
        spec = yaml.safe_load(rendered)["spec"]["template"]["spec"]
        spec.pop("serviceAccountName")  # the chart's ServiceAccount is not installed here
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator"}, "spec": spec})

    admitted = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=pod_of(), check=False)
    assert admitted.returncode == 0, admitted.stderr

    # The namespace does enforce: the same pod allowed to escalate privileges is refused.
    loosened = pod_of("securityContext.allowPrivilegeEscalation=true")
    refused = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=loosened, check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
