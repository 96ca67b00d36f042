"""The chart's dashboard: off by default; when enabled, its own pods, Service and a ClusterRole
that may review tokens and access but never change a release."""

from __future__ import annotations

from typing import Any

from tests.unit.test_chart_render import grants, named, of_kind, pytestmark, render

__all__ = ["pytestmark"]  # helm is needed: skipped like the other chart tests without it

NAME = "ico-istio-canary-operator-dashboard"


def dashboard_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = named(objects, "Deployment", NAME)["spec"]["template"]["spec"]["containers"]
    return dict(found)


def test_the_dashboard_is_off_by_default() -> None:
    assert [o for o in render() if "dashboard" in o["metadata"]["name"]] == []


def test_enabled_it_runs_the_dashboard_command_behind_its_own_service() -> None:
    objects = render("dashboard.enabled=true", "prometheus.url=http://prometheus.monitoring:9090")
    container = dashboard_container(objects)
    assert container["command"] == ["istio-canary-operator", "dashboard"]
    assert "--prometheus-url=http://prometheus.monitoring:9090" in container["args"]
    assert not any(a.startswith("--insecure-cookies") for a in container["args"])
    service = named(objects, "Service", NAME)
    dashboard = named(objects, "Deployment", NAME)
    assert service["spec"]["selector"] == dashboard["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8443
    metrics = named(objects, "Service", "ico-istio-canary-operator-metrics")
    pod_labels = dashboard["spec"]["template"]["metadata"]["labels"]
    assert not metrics["spec"]["selector"].items() <= pod_labels.items()


def test_its_cluster_role_reviews_and_reads_but_cannot_change_a_release() -> None:
    objects = render("dashboard.enabled=true")
    role = named(objects, "ClusterRole", NAME)
    assert grants(role, group="authentication.k8s.io", resource="tokenreviews") == {"create"}
    assert grants(role, group="authorization.k8s.io", resource="subjectaccessreviews") == {"create"}
    assert grants(role, group="releases.istio-canary.io", resource="canaryreleases") == {"get", "list"}
    assert grants(role, group="", resource="events") == {"list", "create"}
    assert len(role["rules"]) == 4
    binding = named(objects, "ClusterRoleBinding", NAME)
    assert binding["subjects"][0]["name"] == named(objects, "ServiceAccount", NAME)["metadata"]["name"]


def test_a_tls_secret_makes_it_serve_https() -> None:
    objects = render("dashboard.enabled=true", "dashboard.tlsSecretName=dashboard-tls")
    container = dashboard_container(objects)
    assert {"--tls-cert=/etc/dashboard-tls/tls.crt", "--tls-key=/etc/dashboard-tls/tls.key"} <= set(container["args"])
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    pod = named(objects, "Deployment", NAME)["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "dashboard-tls"}} in pod["volumes"]


def test_the_dashboard_pod_is_as_locked_down_as_the_operators() -> None:
    objects = render("dashboard.enabled=true")
    operator = named(objects, "Deployment", "ico-istio-canary-operator")["spec"]["template"]["spec"]
    pod = named(objects, "Deployment", NAME)["spec"]["template"]["spec"]
    assert pod["securityContext"] == operator["securityContext"]
    assert dashboard_container(objects)["securityContext"] == operator["containers"][0]["securityContext"]
    assert of_kind(objects, "Deployment") and len(of_kind(objects, "Deployment")) == 2
